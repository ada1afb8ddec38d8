// Source pipelines in the UI against a stubbed API: the editor state's translation to the API body, the
// list page, the editor's Inspect → proposed model → Apply → mapping → save (with the API's errors shown
// at their fields), and a source's run history with its counts and grouped errors.
import { act } from 'preact/test-utils';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Inspection, Run, Source } from '../src/api';
import { editedModel, localSourceProblems, mappingFromProposal, newSourceState, sourceState, toSourceInput } from '../src/lib/source';
import { SourceEditorPage } from '../src/pages/SourceEditor';
import { ScheduleField } from '../src/pages/PipelineEditor';
import { SourceRunsPage, SourcesPage } from '../src/pages/Sources';
import { scheduleLabel, SOURCE_INTERVALS } from '../src/lib/util';
import { schema } from './fixtures';
import { json, mount, unmount } from './mount';

const counts = { read: 0, filtered_out: 0, transform_failed: 0, inserted: 0, updated: 0, unchanged: 0, deleted: 0, failed: 0 };
const run: Run = {
  id: 'run_1',
  pipeline: 'src_1',
  source: 'src_1',
  trigger: 'manual',
  status: 'succeeded',
  queued_at: '2026-03-01T09:00:00Z',
  started_at: '2026-03-01T09:00:00Z',
  finished_at: '2026-03-01T09:00:02Z',
  duration_ms: 2000,
  rows_per_second: null,
  written: 3,
  progress: { processed: 4, total: null },
  counts: { ...counts, read: 4, inserted: 3, failed: 1 },
  errors: [{ step: 'validate', message: 'property `age`: "abc" is not an int', count: 1, sample_profiles: ['c9'], last_seen: '2026-03-01T09:00:02Z' }],
  message: null,
};

const source: Source = {
  id: 'src_1',
  connection: 'dst_1',
  name: 'CRM customers',
  description: '',
  enabled: true,
  table: 'crm_customers',
  query: null,
  id_column: 'customer_id',
  transformation: { mapping: { email: 'lower(email)', 'address.city': 'city' } },
  changes: { mode: 'cursor', column: 'updated_at', lookback: '5m' },
  schedule: '5m',
  running: null,
  last_run: run,
  mark: null,
  created_at: '2026-03-01T08:00:00Z',
  updated_at: '2026-03-01T08:00:00Z',
};

const inspection: Inspection = {
  columns: [
    { name: 'customer_id', type: 'text', nullable: false, property_type: 'string', json: false },
    { name: 'email', type: 'text', nullable: true, property_type: 'string', json: false },
    { name: 'age', type: 'integer', nullable: true, property_type: 'int', json: false },
    { name: 'updated_at', type: 'timestamptz', nullable: false, property_type: 'datetime', json: false },
  ],
  rows: [{ customer_id: 'c1', email: 'Ada@Example.com', age: 36, updated_at: '2026-03-01T08:00:00Z' }],
  model: { properties: [...schema.properties, { name: 'age', type: 'int', nullable: true }, { name: 'updated_at', type: 'datetime', nullable: true }] },
  mapping: { email: 'email', age: 'age', updated_at: 'updated_at' },
  id_column: 'customer_id',
  added: ['age', 'updated_at'],
  issues: [],
};

const connection = { id: 'dst_1', name: 'CRM database', type: 'postgresql', settings: {} };

describe('the source editor state', () => {
  it('round-trips a saved source and builds the API body', () => {
    const st = sourceState(source);
    expect(st.mapping).toEqual([
      { path: 'email', expr: 'lower(email)' },
      { path: 'address.city', expr: 'city' },
    ]);
    const body = toSourceInput(st);
    expect(body).toMatchObject({ connection: 'dst_1', table: 'crm_customers', query: null, id_column: 'customer_id', schedule: '5m' });
    expect(body.transformation).toEqual(source.transformation);
    expect(body.changes).toEqual({ mode: 'cursor', column: 'updated_at', lookback: '5m' });
    // A query source sends the query and no table; full mode sends on_missing; integer lookbacks are numbers.
    const q = toSourceInput({ ...st, read: 'query', query: ' SELECT * FROM t ', mode: 'full', onMissing: 'delete' });
    expect(q.table).toBeNull();
    expect(q.query).toBe('SELECT * FROM t');
    expect(q.changes).toEqual({ mode: 'full', on_missing: 'delete' });
    expect(toSourceInput({ ...st, lookback: '10000' }).changes).toEqual({ mode: 'cursor', column: 'updated_at', lookback: 10000 });
  });

  it('names every missing field before asking the server', () => {
    const p = localSourceProblems({ ...newSourceState(), mapping: [{ path: 'a', expr: 'x' }, { path: 'a', expr: 'y' }] });
    expect(Object.keys(p).sort()).toEqual(['changes.column', 'connection', 'id_column', 'name', 'table', 'transformation.mapping.a']);
  });

  it('leaves out the proposed properties the user unticked and applies changed types', () => {
    const m = editedModel(inspection, new Set(['updated_at']), { age: 'float' });
    expect(m.properties.map((p) => p.name)).toContain('age');
    expect(m.properties.find((p) => p.name === 'age')!.type).toBe('float');
    expect(m.properties.some((p) => p.name === 'updated_at')).toBe(false);
    // Existing properties are untouched even if a type for their path is given.
    expect(editedModel(inspection, new Set(), { email: 'int' }).properties.find((p) => p.name === 'email')!.type).toBe('string');
    expect(mappingFromProposal([{ path: 'email', expr: 'lower(email)' }], inspection.mapping, (p) => p !== 'updated_at')).toEqual([
      { path: 'email', expr: 'lower(email)' },
      { path: 'age', expr: 'age' },
    ]);
  });
});

describe('the sources pages', () => {
  let root: HTMLElement;
  afterEach(() => unmount(root));

  it('names the short intervals, which only the source picker offers', async () => {
    expect(scheduleLabel('5s')).toBe('Every 5 seconds');
    expect(scheduleLabel('2m')).toBe('Every 2 minutes');
    expect(scheduleLabel('15m')).toBe('Every 15 minutes');
    // An export pipeline's picker keeps 5m as its shortest interval and offers on_change.
    root = await mount(<ScheduleField value={null} onChange={() => {}} errors={{ schedule: [], cron: [], timezone: [] }} />);
    const offered = [...root.querySelectorAll<HTMLOptionElement>('select[name="schedule"] option')].map((o) => o.value);
    expect(offered.slice(0, 3)).toEqual(['off', 'on_change', '5m']);
    expect(offered.filter((v) => SOURCE_INTERVALS.some((i) => i.value === v))).toEqual([]);
  });

  it('lists sources with connection, what they read, mode, schedule and last run', async () => {
    vi.stubGlobal(
      'fetch',
      vi.fn(async (url: string) => {
        if (url === '/v1/sources') return json({ sources: [source, { ...source, id: 'src_2', name: 'Orders', table: null, query: 'SELECT id, total FROM orders', changes: { mode: 'full', on_missing: 'delete' }, schedule: null, last_run: null }] });
        if (url === '/v1/destinations') return json({ destinations: [connection] });
        return json({ error: { code: 'NotFound', message: url } }, 404);
      }),
    );
    root = await mount(<SourcesPage />);
    await vi.waitFor(() => expect(root.querySelector('tr[data-source="CRM customers"]')).toBeTruthy());
    const first = root.querySelector('tr[data-source="CRM customers"]')!.textContent!;
    expect(first).toContain('CRM database');
    expect(first).toContain('crm_customers');
    expect(first).toContain('cursor on updated_at (lookback 5m)');
    expect(first).toContain('Every 5 minutes');
    expect(first).toContain('Succeeded');
    const second = root.querySelector('tr[data-source="Orders"]')!.textContent!;
    expect(second).toContain('query: SELECT id, total FROM orders');
    expect(second).toContain('full read, delete missing');
    expect(second).toContain('never');
  });

  it('inspects, applies the edited model, fills the mapping and shows the API errors at their fields', async () => {
    const calls: { method: string; url: string; body?: unknown }[] = [];
    vi.stubGlobal(
      'fetch',
      vi.fn(async (url: string, init?: RequestInit) => {
        const method = init?.method ?? 'GET';
        const body = init?.body ? JSON.parse(String(init.body)) : undefined;
        calls.push({ method, url, body });
        if (url === '/v1/destinations') return json({ destinations: [connection] });
        if (url === '/v1/destinations/dst_1/tables') return json({ tables: [{ schema: 'public', name: 'crm_customers' }] });
        if (url === '/v1/profile-schema' && method === 'GET') return json(schema);
        if (url === '/v1/profile-schema' && method === 'PUT') return json(body);
        if (url.startsWith('/v1/functions')) return json({ functions: [] });
        if (url === '/v1/sources/inspect') return json(inspection);
        if (url === '/v1/sources' && method === 'POST')
          return json(
            {
              error: {
                code: 'ValidationFailed',
                message: 'The source is not valid.',
                fields: { 'changes.column': ['column `updated_at` is not in the source'], 'transformation.mapping.age': ['`agee` is not a column of the source'] },
              },
            },
            422,
          );
        return json({ error: { code: 'NotFound', message: url } }, 404);
      }),
    );
    root = await mount(<SourceEditorPage />);
    await vi.waitFor(() => expect(root.querySelector('input[name="table"]')).toBeTruthy());
    const type = async (el: HTMLInputElement | HTMLSelectElement, v: string, ev = 'input') => {
      el.value = v;
      await act(() => {
        el.dispatchEvent(new Event(ev, { bubbles: true }));
      });
    };
    // The only connection is chosen; its tables are offered.
    expect(root.querySelector<HTMLSelectElement>('select[name="connection"]')!.value).toBe('dst_1');
    await vi.waitFor(() => expect(root.querySelector('input[name="table"]')!.getAttribute('list')).toBeTruthy());
    await type(root.querySelector<HTMLInputElement>('input[name="name"]')!, 'CRM customers');
    await type(root.querySelector<HTMLInputElement>('input[name="table"]')!, 'crm_customers');
    await act(() => root.querySelector<HTMLButtonElement>('button[name="inspect"]')!.click());
    await vi.waitFor(() => expect(root.textContent).toContain('Sample rows (1)'));
    expect(calls.find((c) => c.url === '/v1/sources/inspect')!.body).toEqual({ connection: 'dst_1', table: 'crm_customers', rows: 10 });
    expect(root.textContent).toContain('Ada@Example.com');
    // The id column the inspection found is taken.
    expect(root.querySelector<HTMLSelectElement>('select[name="id_column"]')!.value).toBe('customer_id');
    // Untick updated_at, then apply: the model sent has age but not updated_at.
    const boxes = [...root.querySelectorAll<HTMLInputElement>('.proposal-list input[type="checkbox"]')];
    expect(boxes).toHaveLength(2);
    boxes[1].checked = false;
    await act(() => {
      boxes[1].dispatchEvent(new Event('change', { bubbles: true }));
    });
    await act(() => root.querySelector<HTMLButtonElement>('button[name="apply-model"]')!.click());
    await vi.waitFor(() => expect(calls.some((c) => c.method === 'PUT' && c.url === '/v1/profile-schema')).toBe(true));
    const put = calls.find((c) => c.method === 'PUT')!.body as { properties: { name: string }[] };
    expect(put.properties.map((p) => p.name)).toContain('age');
    expect(put.properties.map((p) => p.name)).not.toContain('updated_at');
    await act(() => root.querySelector<HTMLButtonElement>('button[name="use-mapping"]')!.click());
    expect([...root.querySelectorAll<HTMLInputElement>('.mapping-col input')].map((i) => i.value)).toEqual(['email', 'age']);
    await type(root.querySelector<HTMLSelectElement>('select[name="cursor_column"]')!, 'updated_at', 'change');
    // A source can be polled every few seconds: its picker offers the short intervals first.
    const schedule = root.querySelector<HTMLSelectElement>('select[name="schedule"]')!;
    const offered = [...schedule.options].map((o) => o.value);
    expect(offered.slice(0, 8)).toEqual(['off', '5s', '10s', '15s', '30s', '1m', '2m', '5m']);
    expect(offered).not.toContain('on_change');
    await type(schedule, '5s', 'change');
    expect(schedule.selectedOptions[0].textContent).toBe('Every 5 seconds');
    await act(() => {
      root.querySelector('form')!.dispatchEvent(new Event('submit', { bubbles: true, cancelable: true }));
    });
    await vi.waitFor(() => expect(root.textContent).toContain('2 problems, each shown at its field'));
    const posted = calls.find((c) => c.method === 'POST' && c.url === '/v1/sources')!.body as Record<string, unknown>;
    expect(posted).toMatchObject({ connection: 'dst_1', table: 'crm_customers', id_column: 'customer_id', changes: { mode: 'cursor', column: 'updated_at' }, transformation: { mapping: { email: 'email', age: 'age' } }, schedule: '5s' });
    // Each error sits at its field: the cursor column's, and the mapping row of `age`.
    const cursorField = root.querySelector('select[name="cursor_column"]')!.closest('.field')!;
    expect(cursorField.textContent).toContain('column `updated_at` is not in the source');
    const ageRow = [...root.querySelectorAll('.mapping-row')].find((r) => r.querySelector<HTMLInputElement>('.mapping-col input')?.value === 'age')!;
    expect(ageRow.textContent).toContain('`agee` is not a column of the source');
  });

  it('shows a source run history with counts and grouped errors, and starts a run', async () => {
    const calls: string[] = [];
    vi.stubGlobal(
      'fetch',
      vi.fn(async (url: string, init?: RequestInit) => {
        calls.push(`${init?.method ?? 'GET'} ${url}`);
        if (url === '/v1/sources/src_1') return json(source);
        if (url.startsWith('/v1/sources/src_1/runs') && init?.method === 'POST') return json({ id: 'run_2', status: 'running' }, 202);
        if (url.startsWith('/v1/sources/src_1/runs')) return json({ runs: [run, { ...run, id: 'run_0', counts: { ...counts, read: 2, inserted: 1, failed: 1 } }], next: null });
        return json({ error: { code: 'NotFound', message: url } }, 404);
      }),
    );
    root = await mount(<SourceRunsPage id="src_1" />);
    await vi.waitFor(() => expect(root.textContent).toContain('Run history'));
    const details = root.querySelector('dl.counts')!.textContent!;
    expect(details).toContain('Rows read4');
    expect(details).toContain('Profiles created3');
    expect(details).toContain('Failed rows1');
    // The error log groups both runs' errors by message.
    const log = [...root.querySelectorAll('table.errors-table')].pop()!;
    expect(log.textContent).toContain('property `age`: "abc" is not an int');
    expect(log.querySelector('tbody tr')!.children[2].textContent).toBe('2');
    await act(() => [...root.querySelectorAll<HTMLButtonElement>('button')].find((b) => b.textContent === '▶ Run now')!.click());
    await vi.waitFor(() => expect(calls).toContain('POST /v1/sources/src_1/runs'));
  });
});
