import type { Connector, ProfileSchema } from '../src/api';

/** The PostgreSQL connector as `GET /v1/connectors` describes it. */
export const postgres: Connector = {
  kind: 'postgresql',
  label: 'PostgreSQL',
  description: 'PostgreSQL 11 or later.',
  available: true,
  fields: [
    { name: 'host', label: 'Host', type: 'string', required: true, secret: false, help: 'Hostname or IP address of the database.' },
    { name: 'port', label: 'Port', type: 'integer', default: 5432, required: false, secret: false, help: 'Port used to connect (default is 5432).' },
    { name: 'username', label: 'Username', type: 'string', required: true, secret: false },
    { name: 'password', label: 'Password', type: 'password', required: false, secret: true },
    { name: 'database', label: 'Database name', type: 'string', required: true, secret: false },
    { name: 'schema', label: 'Schema', type: 'string', default: 'public', required: false, secret: false },
    {
      name: 'tls',
      label: 'TLS',
      type: 'tls',
      default: { mode: 'prefer' },
      required: false,
      secret: false,
      options: [
        { value: 'disable', label: 'Disabled' },
        { value: 'prefer', label: 'Preferred' },
        { value: 'require', label: 'Required' },
        { value: 'verify', label: 'Verify certificate' },
      ],
    },
    { name: 'connect_timeout_secs', label: 'Connect timeout (seconds)', type: 'integer', default: 10, required: false, secret: false, advanced: true },
  ],
};

export const schema: ProfileSchema = {
  properties: [
    { name: 'email', type: 'string', nullable: true },
    { name: 'country', type: 'string' },
    { name: 'ltv', type: 'decimal(12,2)' },
    { name: 'orders', type: 'int' },
    { name: 'score', type: 'float' },
    { name: 'subscribed', type: 'boolean' },
    { name: 'signed_up_at', type: 'datetime' },
    { name: 'birthday', type: 'date' },
    { name: 'wake', type: 'time' },
    { name: 'uid', type: 'uuid' },
    { name: 'extra', type: 'json' },
    { name: 'tags', type: 'array(string)' },
    { name: 'address', type: 'object', properties: [{ name: 'city', type: 'string' }, { name: 'geo', type: 'object', properties: [{ name: 'lat', type: 'float' }] }] },
  ],
};
