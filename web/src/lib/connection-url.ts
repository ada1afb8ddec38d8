// A connection URL pasted into a destination's form (`postgres://user:secret@db:5432/analytics`), split into
// the form's fields. Pure: the form decides what to do with the result. The password from the URL goes into
// the password field like a typed one; the URL itself is never sent anywhere.

import type { TlsValue } from './connectors';

export interface ParsedUrl {
  /** The destination kind the URL is for (`postgresql`, `mysql`, `clickhouse`, `snowflake`, `sqlite`). */
  kind: string;
  /** Field name → value, only for what the URL says. */
  values: Record<string, string | TlsValue>;
}

export type UrlResult = { ok: true; parsed: ParsedUrl } | { ok: false; error: string };

const SCHEMES: Record<string, string> = {
  postgres: 'postgresql',
  postgresql: 'postgresql',
  mysql: 'mysql',
  mariadb: 'mysql',
  clickhouse: 'clickhouse',
  'clickhouse+native': 'clickhouse',
  tcp: 'clickhouse',
  snowflake: 'snowflake',
  sqlite: 'sqlite',
};

function decode(s: string, what: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw new Error(`the ${what} has a broken %-escape`);
  }
}

/** The TLS mode a URL's query asks for, in the form's words (`disable`, `prefer`, `require`, `verify`). */
function tlsMode(kind: string, q: URLSearchParams): string | null {
  const pick = (k: string) => q.get(k) ?? q.get(k.toLowerCase());
  if (kind === 'postgresql') {
    const m = pick('sslmode');
    if (!m) return null;
    const map: Record<string, string> = { disable: 'disable', allow: 'prefer', prefer: 'prefer', require: 'require', 'verify-ca': 'verify', 'verify-full': 'verify' };
    if (!map[m]) throw new Error(`sslmode=${m} is not one of disable, allow, prefer, require, verify-ca, verify-full`);
    return map[m];
  }
  if (kind === 'mysql') {
    const m = (pick('ssl-mode') ?? pick('sslMode') ?? '').toUpperCase();
    if (m) {
      const map: Record<string, string> = { DISABLED: 'disable', PREFERRED: 'prefer', REQUIRED: 'require', VERIFY_CA: 'verify', VERIFY_IDENTITY: 'verify' };
      if (!map[m]) throw new Error(`ssl-mode=${m} is not one of DISABLED, PREFERRED, REQUIRED, VERIFY_CA, VERIFY_IDENTITY`);
      return map[m];
    }
    const ssl = pick('ssl');
    if (ssl) return /^(1|true|yes)$/i.test(ssl) ? 'require' : 'disable';
    return null;
  }
  if (kind === 'clickhouse') {
    const s = pick('secure') ?? pick('ssl');
    if (s) return /^(1|true|yes)$/i.test(s) ? 'verify' : 'disable';
    return null;
  }
  return null;
}

/** Parses a pasted connection URL. Errors say what is wrong with it. */
export function parseConnectionUrl(text: string): UrlResult {
  try {
    return { ok: true, parsed: parse(text.trim()) };
  } catch (e) {
    return { ok: false, error: (e as Error).message };
  }
}

function parse(url: string): ParsedUrl {
  const m = /^([a-z][a-z0-9+.-]*):\/\/(.*)$/i.exec(url);
  if (!m) throw new Error('a connection URL starts with its kind, e.g. postgres://, mysql://, clickhouse:// or https://<account>.snowflakecomputing.com');
  const scheme = m[1].toLowerCase();
  let rest = m[2];

  // Snowflake's account URL: https://<orgname>-<account>.snowflakecomputing.com[/…]
  if (scheme === 'https' || scheme === 'http') {
    const host = rest.split(/[/?#]/)[0].toLowerCase();
    const sf = /^([a-z0-9_-]+(?:\.[a-z0-9_-]+)*)\.snowflakecomputing\.com$/.exec(host);
    if (!sf) throw new Error(`${host || 'this address'} is no Snowflake account URL (<orgname>-<account>.snowflakecomputing.com); other databases use their own scheme, e.g. postgres://`);
    return { kind: 'snowflake', values: { account: sf[1] } };
  }
  const kind = SCHEMES[scheme];
  if (!kind) throw new Error(`${scheme}:// is not a kind Sluice knows; use postgres://, mysql://, clickhouse://, snowflake:// or sqlite://`);

  if (kind === 'sqlite') {
    const path = decode(rest.split('?')[0], 'path');
    if (!path) throw new Error('the sqlite:// URL names no file');
    return { kind, values: { path } };
  }

  const hashAt = rest.indexOf('#');
  if (hashAt >= 0) rest = rest.slice(0, hashAt);
  const qAt = rest.indexOf('?');
  const query = new URLSearchParams(qAt >= 0 ? rest.slice(qAt + 1) : '');
  if (qAt >= 0) rest = rest.slice(0, qAt);
  const slash = rest.indexOf('/');
  const authority = slash >= 0 ? rest.slice(0, slash) : rest;
  const path = slash >= 0 ? rest.slice(slash + 1) : '';
  // The last @ ends the user part: an unescaped @ in a password is common enough to accept.
  const at = authority.lastIndexOf('@');
  const userinfo = at >= 0 ? authority.slice(0, at) : '';
  const hostport = at >= 0 ? authority.slice(at + 1) : authority;

  const values: Record<string, string | TlsValue> = {};
  if (userinfo) {
    const colon = userinfo.indexOf(':');
    const user = decode(colon >= 0 ? userinfo.slice(0, colon) : userinfo, 'user name');
    if (user) values.username = user;
    if (colon >= 0) values.password = decode(userinfo.slice(colon + 1), 'password');
  }

  if (kind === 'snowflake') {
    // snowflake://user:password@<account>/<database>/<schema>?warehouse=…&role=…
    const account = hostport.replace(/\.snowflakecomputing\.com$/i, '');
    if (!account) throw new Error('the URL names no Snowflake account after the @');
    values.account = account;
    const [db, schema] = path.split('/').map((p) => decode(p, 'path'));
    if (db) values.database = db;
    if (schema) values.schema = schema;
    for (const k of ['warehouse', 'role']) {
      const v = query.get(k);
      if (v) values[k] = v;
    }
    return { kind, values };
  }

  let host = hostport;
  let port = '';
  const v6 = /^\[([^\]]+)\](?::(.*))?$/.exec(hostport);
  if (v6) {
    host = v6[1];
    port = v6[2] ?? '';
  } else if (hostport.includes(':')) {
    const c = hostport.lastIndexOf(':');
    host = hostport.slice(0, c);
    port = hostport.slice(c + 1);
  }
  if (!host) throw new Error('the URL names no host');
  if (host.includes(',')) throw new Error('the URL names several hosts; enter the one to write to');
  if (port && !/^\d{1,5}$/.test(port)) throw new Error(`the port “${port}” is not a number`);
  if (port && Number(port) > 65535) throw new Error(`the port ${port} is above 65535`);
  values.host = decode(host, 'host');
  if (port) values.port = port;
  const db = decode(path.split('/')[0], 'database name');
  if (db) values.database = db;
  if (kind === 'postgresql') {
    const schema = query.get('currentSchema') ?? query.get('schema');
    if (schema) values.schema = schema;
  }
  if (kind === 'clickhouse' && !db && query.get('database')) values.database = query.get('database')!;
  const mode = tlsMode(kind, query);
  if (mode) values.tls = { mode, ca_cert: '' };
  return { kind, values };
}
