// The home page: runs in progress with progress bars, failures of the last 24 hours with their first error,
// the next scheduled runs and each destination's last connection test.
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Run } from '../src/api';
import { destinationHealth, recentFailures, upcomingRuns } from '../src/lib/home';
import { HomePage } from '../src/pages/Home';
import { json, mount, pipeline, unmount } from './mount';

const counts = { read: 0, filtered_out: 0, transform_failed: 0, inserted: 0, updated: 0, unchanged: 0, deleted: 0, failed: 0 };
const run = (c: Partial<Run>): Run => ({ id: 'r', pipeline: 'pl_1', trigger: 'schedule', status: 'succeeded', queued_at: '2026-03-02T08:00:00Z', started_at: null, finished_at: null, duration_ms: null, rows_per_second: null, written: 0, progress: { processed: 0, total: null }, counts, errors: [], message: null, ...c });
const now = Date.parse('2026-03-02T12:00:00Z');

describe('what the home page lists', () => {
  it('failures of the last 24 hours, newest first, with their first error', () => {
    const p = pipeline();
    const runs = new Map([
      [
        'pl_1',
        [
          run({ id: 'a', status: 'failed', finished_at: '2026-03-02T11:00:00Z', message: 'connection refused' }),
          run({ id: 'b', status: 'succeeded', finished_at: '2026-03-02T10:00:00Z', counts: { ...counts, failed: 2 }, errors: [{ step: 'write', message: 'value too long', count: 2, sample_profiles: ['c1'], last_seen: '2026-03-02T10:00:00Z' }] }),
          run({ id: 'c', status: 'succeeded', finished_at: '2026-03-02T09:00:00Z' }),
          run({ id: 'd', status: 'failed', finished_at: '2026-02-28T09:00:00Z', message: 'old' }),
        ],
      ],
    ]);
    const f = recentFailures([p], runs, now);
    expect(f.map((x) => [x.run.id, x.firstError])).toEqual([
      ['a', 'connection refused'],
      ['b', 'value too long'],
    ]);
  });

  it('the next scheduled runs, soonest first, without disabled or unscheduled pipelines', () => {
    const ps = [
      pipeline({ id: 'late', schedule: '1h', next_run_at: '2026-03-02T13:00:00Z' }),
      pipeline({ id: 'soon', schedule: '5m', next_run_at: '2026-03-02T12:05:00Z' }),
      pipeline({ id: 'off', schedule: null, next_run_at: null }),
      pipeline({ id: 'paused', enabled: false, schedule: '5m', next_run_at: '2026-03-02T12:01:00Z' }),
    ];
    expect(upcomingRuns(ps).map((u) => u.pipeline.id)).toEqual(['soon', 'late']);
  });

  it('destination health from the last connection test', () => {
    const d = { id: 'd', name: 'W', type: 'postgresql', settings: {}, created_at: '', updated_at: '' };
    expect(destinationHealth(d).state).toBe('untested');
    expect(destinationHealth({ ...d, last_test: { at: '2026-03-02T11:00:00Z', ok: false, message: 'password authentication failed' } })).toEqual({ state: 'failed', text: 'password authentication failed' });
  });
});

describe('the home page', () => {
  let root: HTMLElement;
  afterEach(() => unmount(root));

  it('shows a run in progress with its progress bar', async () => {
    const p = pipeline({ running: 'run_live', schedule: '15m', next_run_at: new Date(Date.now() + 600_000).toISOString() });
    const live = run({ id: 'run_live', status: 'running', started_at: new Date().toISOString(), progress: { processed: 420, total: 1000 } });
    vi.stubGlobal(
      'fetch',
      vi.fn(async (url: string) => {
        if (url.startsWith('/v1/pipelines/pl_1/runs')) return json({ runs: [live], next: null });
        if (url.startsWith('/v1/pipelines')) return json({ pipelines: [p] });
        if (url.startsWith('/v1/destinations')) return json({ destinations: [{ id: 'dst_1', name: 'Warehouse', type: 'postgresql', settings: {}, created_at: '', updated_at: '' }] });
        return json({ error: { code: 'NotFound', message: url } }, 404);
      }),
    );
    root = await mount(<HomePage />);
    await vi.waitFor(() => expect(root.textContent).toContain('Running now'));
    await vi.waitFor(() => expect(root.textContent).toContain('420 of 1,000 profiles'));
    expect(root.querySelector('[role="progressbar"]')?.getAttribute('aria-valuenow')).toBe('42');
    expect(root.textContent).toContain('No failed run in the last 24 hours.');
    expect(root.textContent).toMatch(/Export users · in (9|10) minutes · Warehouse/);
    expect(root.textContent).toContain('Not tested');
  });
});
