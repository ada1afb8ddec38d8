// Connection URLs pasted into a destination's form.
import { describe, expect, it } from 'vitest';
import { parseConnectionUrl } from '../src/lib/connection-url';

const ok = (url: string) => {
  const r = parseConnectionUrl(url);
  if (!r.ok) throw new Error(r.error);
  return r.parsed;
};
const err = (url: string) => {
  const r = parseConnectionUrl(url);
  if (r.ok) throw new Error(`${url} parsed`);
  return r.error;
};

describe('connection URLs', () => {
  it('PostgreSQL with user, password, port, database, TLS and schema', () => {
    expect(ok('postgres://app:s3cr%40t@db.example.com:6543/analytics?sslmode=verify-full&currentSchema=crm')).toEqual({
      kind: 'postgresql',
      values: { username: 'app', password: 's3cr@t', host: 'db.example.com', port: '6543', database: 'analytics', schema: 'crm', tls: { mode: 'verify', ca_cert: '' } },
    });
    expect(ok('postgresql://localhost/test')).toEqual({ kind: 'postgresql', values: { host: 'localhost', database: 'test' } });
  });

  it('takes the last @ as the end of the password', () => {
    expect(ok('postgres://u:p@ss@h/d').values).toMatchObject({ username: 'u', password: 'p@ss', host: 'h' });
  });

  it('MySQL and MariaDB', () => {
    expect(ok('mysql://root@127.0.0.1:3306/test?ssl-mode=REQUIRED')).toEqual({
      kind: 'mysql',
      values: { username: 'root', host: '127.0.0.1', port: '3306', database: 'test', tls: { mode: 'require', ca_cert: '' } },
    });
    expect(ok('mariadb://a:b@[::1]:3307/x').values).toMatchObject({ host: '::1', port: '3307', password: 'b' });
  });

  it('ClickHouse, secure', () => {
    expect(ok('clickhouse://default:pw@ch.internal:9440/events?secure=true')).toEqual({
      kind: 'clickhouse',
      values: { username: 'default', password: 'pw', host: 'ch.internal', port: '9440', database: 'events', tls: { mode: 'verify', ca_cert: '' } },
    });
  });

  it('Snowflake account URLs and snowflake:// URLs', () => {
    expect(ok('https://myorg-acct1.snowflakecomputing.com/console')).toEqual({ kind: 'snowflake', values: { account: 'myorg-acct1' } });
    expect(ok('snowflake://loader:pw@myorg-acct1/ANALYTICS/PUBLIC?warehouse=WH&role=LOADER')).toEqual({
      kind: 'snowflake',
      values: { username: 'loader', password: 'pw', account: 'myorg-acct1', database: 'ANALYTICS', schema: 'PUBLIC', warehouse: 'WH', role: 'LOADER' },
    });
  });

  it('SQLite', () => {
    expect(ok('sqlite:///var/lib/x.db')).toEqual({ kind: 'sqlite', values: { path: '/var/lib/x.db' } });
  });

  it('says what is wrong', () => {
    expect(err('db.example.com:5432')).toMatch(/starts with its kind/);
    expect(err('oracle://h/d')).toMatch(/oracle:\/\/ is not a kind/);
    expect(err('postgres://h:54x/d')).toMatch(/port “54x” is not a number/);
    expect(err('postgres://h:99999/d')).toMatch(/above 65535/);
    expect(err('https://example.com')).toMatch(/no Snowflake account URL/);
    expect(err('postgres://h/d?sslmode=maybe')).toMatch(/sslmode=maybe/);
    expect(err('postgres://u:p@/d')).toMatch(/no host/);
  });
});
