import { describe, expect, it } from 'vitest';
import type { Run, TableDescription } from '../src/api';
import { linesInMessage } from '../src/components/CodeEditor';
import { insideString, suggestionsFor, tokenAt } from '../src/components/ExpressionInput';
import { axis, chartPoints } from '../src/components/RunChart';
import { fromWire, localModelProblems, toWire } from '../src/lib/model';
import { cleanMapping, describePath, editorState, liveSubset, scriptTemplate, toPipelineInput } from '../src/lib/pipeline';
import { flattenSchema, formatType, parseType } from '../src/lib/schema';
import { cronProblem, errorsUnder, formatDuration, isUnder, keyCapableColumns, scheduleLabel } from '../src/lib/util';
import { parseRoute } from '../src/router';
import { groupErrors } from '../src/pages/Runs';
import { schema } from './fixtures';

const table: TableDescription = {
  name: 'customers',
  columns: [
    { name: 'customer_id', type: 'text', nullable: false },
    { name: 'email', type: 'character varying(200)', nullable: true },
    { name: 'full_name', type: 'text', nullable: true },
    { name: 'amount', type: 'numeric(12,2)', nullable: true },
    { name: 'seq', type: 'bigint', nullable: false },
  ],
  keys: [['customer_id'], ['email'], ['amount'], ['full_name', 'seq']],
  issues: [],
};

describe('types', () => {
  it('parses and prints Customer Model types', () => {
    expect(parseType('decimal(12,2)')).toEqual({ kind: 'decimal', precision: 12, scale: 2 });
    expect(parseType('array(decimal(10, 3))')).toEqual({ kind: 'array', element: { kind: 'decimal', precision: 10, scale: 3 } });
    expect(formatType(parseType('array(object)'))).toBe('array(object)');
    expect(parseType('weird').kind).toBe('json');
  });

  it('round-trips the model through the editor', () => {
    const wire = toWire(fromWire(schema.properties));
    expect(wire.properties.find((p) => p.name === 'address')).toEqual({
      name: 'address',
      type: 'object',
      nullable: true,
      properties: [
        { name: 'city', type: 'string', nullable: true },
        { name: 'geo', type: 'object', nullable: true, properties: [{ name: 'lat', type: 'float', nullable: true }] },
      ],
    });
    expect(wire.properties.find((p) => p.name === 'ltv')?.type).toBe('decimal(12,2)');
    expect(wire.properties.find((p) => p.name === 'tags')?.type).toBe('array(string)');
  });

  it('finds bad and duplicated names at their path', () => {
    const p = fromWire([{ name: 'a', type: 'string' }, { name: 'a', type: 'int' }, { name: 'o', type: 'object', properties: [{ name: '9x', type: 'string' }] }]);
    expect(localModelProblems(p)).toEqual({
      'properties[1].name': ['`a` is already defined at this level'],
      'properties[2].properties[0].name': ['use letters, digits and _, starting with a letter'],
    });
  });
});

describe('tables and keys', () => {
  it('offers only single-column string, integer and uuid keys', () => {
    expect(keyCapableColumns(table).map((c) => c.name)).toEqual(['customer_id', 'email']);
  });

  it('trusts the server when it says which columns are key-capable', () => {
    const t = { ...table, columns: table.columns.map((c) => ({ ...c, key_capable: c.name === 'seq' })) };
    expect(keyCapableColumns(t).map((c) => c.name)).toEqual(['seq']);
  });
});

describe('the pipeline editor state', () => {
  it('sends only non-empty expressions, in table order', () => {
    expect(cleanMapping({ email: ' lower(email) ', customer_id: '_id', full_name: '  ', gone: 'x' }, table)).toEqual({ customer_id: '_id', email: 'lower(email)', gone: 'x' });
  });

  it('builds the pipeline object of API.md', () => {
    const s = { ...editorState({ destination: 'dst_1' }), name: ' Export users ', table: 'customers', key: 'customer_id', mapping: { customer_id: '_id' }, filter: { logical: 'and' as const, conditions: [] } };
    expect(toPipelineInput(s, table)).toEqual({
      destination: 'dst_1',
      name: 'Export users',
      description: '',
      enabled: false,
      filter: null,
      table: 'customers',
      key: 'customer_id',
      transformation: { mapping: { customer_id: '_id' } },
      schedule: null,
      on_leave: 'keep',
    });
    expect(toPipelineInput({ ...s, kind: 'python', python: 'def transform(p): return None' }).transformation).toEqual({ python: 'def transform(p): return None' });
  });

  it('reads a saved pipeline back', () => {
    const st = editorState({ destination: 'd', transformation: { javascript: 'x' }, schedule: { cron: '0 3 * * *', timezone: 'Europe/Rome' }, on_leave: 'delete', enabled: true });
    expect(st.kind).toBe('javascript');
    expect(st.javascript).toBe('x');
    expect(st.on_leave).toBe('delete');
  });

  it('starts scripts from a template that maps the key', () => {
    expect(scriptTemplate('javascript', table, 'customer_id')).toContain('customer_id: profile._id,');
    expect(scriptTemplate('python', table, 'customer_id')).toContain('"customer_id": profile["_id"],');
  });

  it('labels error paths and keeps the live ones', () => {
    expect(describePath('transformation.mapping.email')).toBe('Column email');
    expect(describePath('filter.conditions[1].conditions[0].values')).toBe('Filter condition 2.1');
    expect(describePath('key')).toBe('Matching column');
    expect(liveSubset({ name: ['x'], key: ['y'], 'transformation.mapping.a': ['z'], 'filter.conditions[0]': ['w'] })).toEqual({ key: ['y'], 'transformation.mapping.a': ['z'], 'filter.conditions[0]': ['w'] });
  });

  it('matches error paths by prefix without confusing indexes', () => {
    expect(isUnder('filter.conditions[1].values', 'filter.conditions[1]')).toBe(true);
    expect(isUnder('filter.conditions[10].values', 'filter.conditions[1]')).toBe(false);
    expect(errorsUnder({ 'filter.conditions[0]': ['a'], 'filter.conditions[0].values': ['b'], 'filter.conditions[01]': ['c'] }, 'filter.conditions[0]')).toEqual(['a', 'b']);
  });
});

describe('expression suggestions', () => {
  const props = flattenSchema(schema);
  const fns = [
    { name: 'lower', signature: 'lower(text)', description: 'Lower-cases text.', category: 'text' },
    { name: 'len', signature: 'len(x)', description: 'Length.', category: 'text' },
  ];

  it('finds the token before the caret', () => {
    expect(tokenAt('lower(address.ci', 16)).toEqual({ start: 6, token: 'address.ci' });
    expect(tokenAt('a " " b', 7)).toEqual({ start: 6, token: 'b' });
    expect(insideString('concat "ab', 10)).toBe(true);
    expect(insideString('"a" b', 5)).toBe(false);
  });

  it('suggests properties (nested too) and functions', () => {
    expect(suggestionsFor('address.c', props, fns).map((s) => s.insert)).toEqual(['address.city']);
    const l = suggestionsFor('l', props, fns).map((s) => s.insert);
    expect(l).toContain('ltv');
    expect(l).toContain('lower(');
    expect(l).toContain('len(');
  });
});

describe('runs', () => {
  const run = (id: string, at: string, counts: Partial<Run['counts']>, errors: Run['errors'] = []): Run => ({
    id,
    pipeline: 'p',
    trigger: 'manual',
    status: 'succeeded',
    queued_at: at,
    started_at: at,
    finished_at: at,
    duration_ms: 0,
    rows_per_second: null,
    written: 0,
    message: null,
    progress: { processed: 0, total: null },
    counts: { read: 0, filtered_out: 0, transform_failed: 0, inserted: 0, updated: 0, unchanged: 0, deleted: 0, failed: 0, ...counts },
    errors,
  });

  it('charts exported and failed rows in time order', () => {
    const pts = chartPoints([run('b', '2026-01-02T00:00:00Z', { inserted: 5, updated: 2, failed: 1, transform_failed: 1 }), run('a', '2026-01-01T00:00:00Z', { inserted: 1 })]);
    expect(pts.map((p) => [p.run.id, p.exported, p.failed])).toEqual([
      ['a', 1, 0],
      ['b', 7, 2],
    ]);
    expect(axis(3)).toEqual({ top: 3, ticks: [0, 1, 2, 3] });
    expect(axis(7)).toEqual({ top: 8, ticks: [0, 2, 4, 6, 8] });
    expect(axis(1200)).toEqual({ top: 1500, ticks: [0, 500, 1000, 1500] });
    expect(axis(4900)).toEqual({ top: 6000, ticks: [0, 2000, 4000, 6000] });
    expect(axis(0)).toEqual({ top: 1, ticks: [0, 1] });
  });

  it('groups errors by message across runs', () => {
    const e = (count: number, ids: string[], last: string) => ({ step: 'write', message: 'value too long', count, sample_profiles: ids, last_seen: last });
    const g = groupErrors([run('a', '2026-01-02T00:00:00Z', {}, [e(2, ['c1', 'c2'], '2026-01-02T00:00:00Z')]), run('b', '2026-01-01T00:00:00Z', {}, [e(3, ['c2', 'c3'], '2026-01-01T00:00:00Z')])]);
    expect(g).toEqual([{ step: 'write', message: 'value too long', count: 5, sample_profiles: ['c1', 'c2', 'c3'], last_seen: '2026-01-02T00:00:00Z', runs: 2 }]);
  });
});

describe('small helpers', () => {
  it('formats durations and schedules', () => {
    expect(formatDuration(450)).toBe('450 ms');
    expect(formatDuration(6600)).toBe('6.6 s');
    expect(formatDuration(125000)).toBe('2 min 5 s');
    expect(scheduleLabel(null)).toBe('Off');
    expect(scheduleLabel('15m')).toBe('Every 15 minutes');
    expect(scheduleLabel({ cron: '0 3 * * *', timezone: 'Europe/Rome' })).toBe('Cron 0 3 * * * (Europe/Rome)');
    expect(cronProblem('0 3 * * *')).toBeNull();
    expect(cronProblem('0 3 * *')).toMatch(/5 fields/);
  });

  it('finds line numbers in script errors', () => {
    expect(linesInMessage('SyntaxError at line 3: unexpected token')).toEqual([3]);
    expect(linesInMessage('<input>:7:12 bad')).toEqual([7]);
  });

  it('routes hashes to pages', () => {
    expect(parseRoute('')).toEqual({ page: 'home' });
    expect(parseRoute('#/destinations')).toEqual({ page: 'destinations' });
    expect(parseRoute('#/destinations/new/postgresql')).toEqual({ page: 'new-destination', kind: 'postgresql' });
    expect(parseRoute('#/destinations/dst_1/pipelines/new')).toEqual({ page: 'new-pipeline', destination: 'dst_1' });
    expect(parseRoute('#/pipelines/pl_1/runs')).toEqual({ page: 'runs', id: 'pl_1' });
    expect(parseRoute('#/nope').page).toBe('not-found');
  });
});
