import { render } from 'preact';
import { act } from 'preact/test-utils';
import { afterEach, describe, expect, it } from 'vitest';
import { applyChange, buildSettings, describeSettings, initialValues, localProblems } from '../src/lib/connectors';
import type { Connector } from '../src/api';
import { ConnectionForm } from '../src/pages/DestinationForm';
import { postgres } from './fixtures';

const clickhouse: Connector = {
  kind: 'clickhouse',
  label: 'ClickHouse',
  description: 'ClickHouse over its native protocol.',
  available: true,
  fields: [
    { name: 'host', label: 'Host', type: 'string', required: true, secret: false },
    { name: 'port', label: 'Port', type: 'integer', default: 9000, tls_default: 9440, required: false, secret: false },
    {
      name: 'tls',
      label: 'TLS',
      type: 'tls',
      default: { mode: 'disable' },
      required: false,
      secret: false,
      options: [
        { value: 'disable', label: 'Disabled' },
        { value: 'require', label: 'Required' },
        { value: 'verify', label: 'Verify certificate' },
      ],
    },
  ],
};

describe('fields whose default depends on TLS', () => {
  it('moves the ClickHouse port to 9440 with TLS and back, unless the user chose one', () => {
    const start = initialValues(clickhouse);
    expect(start.port).toBe('9000');
    const secure = applyChange(clickhouse, start, 'tls', { mode: 'verify', ca_cert: '' });
    expect(secure.port).toBe('9440');
    // Between two TLS modes nothing moves.
    expect(applyChange(clickhouse, secure, 'tls', { mode: 'require', ca_cert: '' }).port).toBe('9440');
    expect(applyChange(clickhouse, secure, 'tls', { mode: 'disable', ca_cert: '' }).port).toBe('9000');
    const own = applyChange(clickhouse, start, 'port', '19000');
    expect(applyChange(clickhouse, own, 'tls', { mode: 'verify', ca_cert: '' }).port).toBe('19000');
  });

  it('leaves connectors without such fields alone', () => {
    const start = initialValues(postgres);
    expect(applyChange(postgres, start, 'tls', { mode: 'disable', ca_cert: '' }).port).toBe('5432');
  });
});

describe('connection forms from connector fields', () => {
  it('starts from the defaults', () => {
    expect(initialValues(postgres)).toEqual({
      host: '',
      port: '5432',
      username: '',
      password: '',
      database: '',
      schema: 'public',
      tls: { mode: 'prefer', ca_cert: '' },
      connect_timeout_secs: '10',
    });
  });

  it('never shows a saved secret', () => {
    const v = initialValues(postgres, { host: 'db', port: 6543, password: '********', tls: { mode: 'verify', ca_cert: 'PEM' } });
    expect(v.password).toBe('');
    expect(v.port).toBe('6543');
    expect(v.tls).toEqual({ mode: 'verify', ca_cert: 'PEM' });
  });

  it('builds typed settings and leaves blanks out', () => {
    const v = { ...initialValues(postgres), host: ' db.internal ', username: 'sluice', password: 'p@ss ', database: 'analytics' };
    expect(buildSettings(postgres, v)).toEqual({
      host: 'db.internal',
      port: 5432,
      username: 'sluice',
      password: 'p@ss ',
      database: 'analytics',
      schema: 'public',
      tls: { mode: 'prefer' },
      connect_timeout_secs: 10,
    });
    const edited = { ...v, password: '' };
    expect(buildSettings(postgres, edited)).not.toHaveProperty('password');
  });

  it('names missing required fields like the API does', () => {
    const v = initialValues(postgres);
    expect(localProblems(postgres, '', v, false)).toEqual({
      name: ['give the destination a name'],
      'settings.host': ['Host is required'],
      'settings.username': ['Username is required'],
      'settings.database': ['Database name is required'],
    });
    expect(localProblems(postgres, 'x', { ...v, host: 'h', username: 'u', database: 'd', port: '54x' }, false)).toEqual({ 'settings.port': ['Port must be a whole number'] });
  });

  it('describes where a destination points', () => {
    expect(describeSettings('postgresql', { host: 'db', port: 5432, database: 'a', schema: 'public' })).toBe('db:5432 / a.public');
    expect(describeSettings('sqlite', { path: '/tmp/x.db' })).toBe('/tmp/x.db');
  });
});

describe('the connection form', () => {
  let root: HTMLElement;
  afterEach(() => {
    render(null, root);
    root.remove();
  });

  it('renders every field with its label, default and masking', async () => {
    root = document.createElement('div');
    document.body.appendChild(root);
    await act(() => render(<ConnectionForm connector={postgres} />, root));
    const byLabel = (text: string) => {
      const label = [...root.querySelectorAll('label')].find((l) => l.textContent?.replace('*', '').trim() === text);
      expect(label, `label ${text}`).toBeTruthy();
      return document.getElementById(label!.htmlFor) as HTMLInputElement;
    };
    expect(byLabel('Name').value).toBe('PostgreSQL');
    expect(byLabel('Host').getAttribute('aria-required')).toBe('true');
    expect(byLabel('Port').value).toBe('5432');
    expect(byLabel('Port').type).toBe('number');
    expect(byLabel('Username').value).toBe('');
    expect(byLabel('Password').type).toBe('password');
    expect(byLabel('Database name')).toBeTruthy();
    expect(byLabel('Schema').value).toBe('public');
    const tls = byLabel('TLS') as unknown as HTMLSelectElement;
    expect(tls.tagName).toBe('SELECT');
    expect(tls.value).toBe('prefer');
    expect([...tls.options].map((o) => o.value)).toEqual(['disable', 'prefer', 'require', 'verify']);
    expect(root.querySelector('details.advanced')?.textContent).toContain('Connect timeout (seconds)');
    const buttons = [...root.querySelectorAll('button')].map((b) => b.textContent);
    expect(buttons).toContain('Test connection');
    expect(buttons).toContain('Add');
    // Every control has a label or an accessible name.
    for (const el of root.querySelectorAll('input, select, textarea')) {
      const id = el.getAttribute('id');
      const labelled = (id && [...root.querySelectorAll('label')].some((l) => l.htmlFor === id)) || el.getAttribute('aria-label') || el.closest('label');
      expect(labelled, el.outerHTML).toBeTruthy();
    }
  });

  it('says Save and keeps stored secrets when editing', async () => {
    root = document.createElement('div');
    document.body.appendChild(root);
    const dest = { id: 'dst_1', name: 'Replica', type: 'postgresql', settings: { host: 'db', port: 5432, username: 'u', password: '********', database: 'a', schema: 'public', tls: { mode: 'require' } }, created_at: '2026-03-01T09:00:00Z', updated_at: '2026-03-01T09:00:00Z' };
    await act(() => render(<ConnectionForm connector={postgres} destination={dest} />, root));
    const pw = root.querySelector<HTMLInputElement>('input[name="password"]')!;
    expect(pw.value).toBe('');
    expect(pw.placeholder).toMatch(/unchanged/);
    expect([...root.querySelectorAll('button')].map((b) => b.textContent)).toContain('Save');
  });
});

describe('the connection form before a test', () => {
  let root: HTMLElement;
  afterEach(() => {
    render(null, root);
    root.remove();
  });

  const byLabel = (text: string) => {
    const label = [...root.querySelectorAll('label')].find((l) => l.textContent?.replace('*', '').trim() === text);
    return document.getElementById(label!.htmlFor) as HTMLInputElement;
  };
  const type = async (el: HTMLInputElement, v: string) => {
    el.value = v;
    await act(() => {
      el.dispatchEvent(new Event('input', { bubbles: true }));
    });
  };

  it('names the empty required fields instead of reporting a failed test', async () => {
    root = document.createElement('div');
    document.body.appendChild(root);
    await act(() => render(<ConnectionForm connector={postgres} />, root));
    await type(byLabel('Host'), 'db.example.com');
    const test = [...root.querySelectorAll('button')].find((b) => b.textContent === 'Test connection')!;
    await act(() => test.click());
    const outcome = root.querySelector('.test-outcome')!.textContent!;
    expect(outcome).not.toContain('failed');
    expect(outcome).toContain('Connection not tested');
    expect(outcome).toContain('Fill in Username and Database name to test the connection.');
  });

  it('fills the fields from a pasted connection URL, password included', async () => {
    root = document.createElement('div');
    document.body.appendChild(root);
    await act(() => render(<ConnectionForm connector={postgres} />, root));
    await type(byLabel('Connection URL (optional)'), 'postgres://app:pa%3Ass@db.example.com:6543/analytics?sslmode=require');
    expect(byLabel('Host').value).toBe('db.example.com');
    expect(byLabel('Port').value).toBe('6543');
    expect(byLabel('Username').value).toBe('app');
    expect(byLabel('Password').value).toBe('pa:ss');
    expect(byLabel('Password').type).toBe('password');
    expect(byLabel('Database name').value).toBe('analytics');
    expect((byLabel('TLS') as unknown as HTMLSelectElement).value).toBe('require');
    expect(root.textContent).toContain('Filled in');
    await type(byLabel('Connection URL (optional)'), 'mysql://root@h/test');
    expect(root.textContent).toContain('This is a URL for mysql; this form is for PostgreSQL.');
    expect(byLabel('Host').value).toBe('db.example.com');
  });
});
