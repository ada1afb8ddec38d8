// Connection forms rendered from `GET /v1/connectors`: the form's initial values (defaults, or a saved
// destination's settings with secrets left blank), the settings object sent to the API, and the checks
// the browser can make before asking the server.

import type { Connector, ConnectorField, Settings } from '../api';

/** What a TLS field holds in the form. */
export interface TlsValue {
  mode: string;
  ca_cert: string;
}

export type FormValue = string | boolean | TlsValue;
export type FormValues = Record<string, FormValue>;

/** The mask the API shows for stored secrets. */
export const SECRET_MASK = '********';

export function isTlsField(f: ConnectorField): boolean {
  return f.type === 'tls';
}

function tlsFrom(v: unknown, field: ConnectorField): TlsValue {
  const fallback = (field.default as { mode?: string } | undefined)?.mode ?? field.options?.[0]?.value ?? 'disable';
  if (typeof v === 'string') return { mode: v, ca_cert: '' };
  if (v && typeof v === 'object') {
    const o = v as { mode?: unknown; ca_cert?: unknown };
    return { mode: typeof o.mode === 'string' ? o.mode : fallback, ca_cert: typeof o.ca_cert === 'string' ? o.ca_cert : '' };
  }
  return { mode: fallback, ca_cert: '' };
}

/** Initial values: each field's default, or the saved settings (secrets are never shown: blank). */
export function initialValues(connector: Connector, saved?: Settings): FormValues {
  const out: FormValues = {};
  for (const f of connector.fields) {
    const v = saved && f.name in saved ? saved[f.name] : f.default;
    if (isTlsField(f)) out[f.name] = tlsFrom(v, f);
    else if (f.secret) out[f.name] = '';
    else if (f.type === 'boolean') out[f.name] = v === true;
    else out[f.name] = v === undefined || v === null ? '' : typeof v === 'string' ? v : String(v);
  }
  return out;
}

/** The values after a change of `field` to `value`. Turning TLS on or off also moves fields whose default
 *  depends on it (ClickHouse's port: 9000 ↔ 9440) — unless the user typed a value of their own. */
export function applyChange(connector: Connector, values: FormValues, field: string, value: FormValue): FormValues {
  const next: FormValues = { ...values, [field]: value };
  const changed = connector.fields.find((f) => f.name === field);
  if (!changed || !isTlsField(changed)) return next;
  const wasOn = (values[field] as TlsValue | undefined)?.mode !== undefined && (values[field] as TlsValue).mode !== 'disable';
  const isOn = (value as TlsValue).mode !== 'disable';
  if (wasOn === isOn) return next;
  for (const f of connector.fields) {
    if (f.tls_default === undefined || f.tls_default === null) continue;
    const plain = String(f.default ?? '');
    const secure = String(f.tls_default);
    const current = String(values[f.name] ?? '');
    if (current === '' || current === (isOn ? plain : secure)) next[f.name] = isOn ? secure : plain;
  }
  return next;
}

/** The settings object for the API. Blank optional fields are left out (the server applies defaults);
 *  blank secrets are left out when editing so that the stored value is kept. */
export function buildSettings(connector: Connector, values: FormValues): Settings {
  const out: Settings = {};
  for (const f of connector.fields) {
    const v = values[f.name];
    if (isTlsField(f)) {
      const t = (v as TlsValue | undefined) ?? tlsFrom(undefined, f);
      const tls: Record<string, string> = { mode: t.mode };
      if (t.ca_cert.trim()) tls.ca_cert = t.ca_cert;
      out[f.name] = tls;
      continue;
    }
    if (typeof v === 'boolean') {
      out[f.name] = v;
      continue;
    }
    const text = (v ?? '').toString();
    if (text.trim() === '') continue;
    if (f.type === 'integer') {
      const n = Number(text.trim());
      out[f.name] = Number.isInteger(n) ? n : text.trim();
    } else if (f.secret || f.type === 'text') {
      out[f.name] = text;
    } else {
      out[f.name] = text.trim();
    }
  }
  return out;
}

/** Problems found without the server, keyed like the API's (`settings.host`, `name`). When editing,
 *  blank secrets are fine: the stored ones are kept. */
export function localProblems(connector: Connector, name: string, values: FormValues, editing: boolean): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  if (!name.trim()) out.name = ['give the destination a name'];
  for (const f of connector.fields) {
    const v = values[f.name];
    // TLS: without a CA certificate, "verify" checks against the public CAs; the server decides.
    if (isTlsField(f) || typeof v === 'boolean') continue;
    const text = (v ?? '').toString().trim();
    if (!text) {
      if (f.required && !(editing && f.secret)) out[`settings.${f.name}`] = [`${f.label} is required`];
      continue;
    }
    if (f.type === 'integer' && !/^\d+$/.test(text)) out[`settings.${f.name}`] = [`${f.label} must be a whole number`];
  }
  return out;
}

/** A short description of where a destination points (`db.example.com:5432/analytics`). */
export function describeSettings(type: string, settings: Settings): string {
  const s = settings as Record<string, unknown>;
  const str = (k: string) => (typeof s[k] === 'string' || typeof s[k] === 'number' ? String(s[k]) : '');
  if (type === 'sqlite') return str('path');
  if (type === 'snowflake') return [str('account'), str('database'), str('schema')].filter(Boolean).join(' / ');
  const hostPort = str('host') + (str('port') ? `:${str('port')}` : '');
  const db = [str('database'), str('schema')].filter(Boolean).join('.');
  return [hostPort, db].filter(Boolean).join(' / ');
}

/** Short initials shown on a connector's card. */
export function connectorMonogram(kind: string): string {
  const m: Record<string, string> = { postgresql: 'Pg', mysql: 'My', clickhouse: 'CH', snowflake: 'Sf', sqlite: 'Sq' };
  return m[kind] ?? kind.slice(0, 2).toUpperCase();
}
