// The runs page against a stubbed API: a queued run is explained and can be cancelled from the history.
import { act } from 'preact/test-utils';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Run } from '../src/api';
import { RunsPage } from '../src/pages/Runs';
import { json, mount, pipeline as basePipeline, unmount } from './mount';

const pipeline = basePipeline({
  transformation: { python: 'def transform(p): return None' },
  schedule: '15m',
  running: 'run_q',
  next_run_at: new Date(Date.now() + 10 * 60_000).toISOString(),
});

const counts = { read: 0, filtered_out: 0, transform_failed: 0, inserted: 0, updated: 0, unchanged: 0, deleted: 0, failed: 0 };
const queued: Run = { id: 'run_q', pipeline: 'pl_1', trigger: 'schedule', status: 'queued', queued_at: '2026-03-01T10:00:00Z', started_at: null, finished_at: null, duration_ms: null, rows_per_second: null, written: 0, progress: { processed: 0, total: null }, counts, errors: [], message: null };
const done: Run = { ...queued, id: 'run_d', status: 'succeeded', trigger: 'manual', started_at: '2026-03-01T09:00:00Z', finished_at: '2026-03-01T09:00:02Z', counts: { ...counts, read: 3, inserted: 3 } };

describe('the runs page', () => {
  let root: HTMLElement;
  afterEach(() => unmount(root));

  it('explains a queued run and cancels it from the run history', async () => {
    let cancelled = false;
    const calls: string[] = [];
    const fetch = vi.fn(async (url: string, init?: RequestInit) => {
      calls.push(`${init?.method ?? 'GET'} ${url}`);
      if (url === '/v1/pipelines/pl_1') return json(pipeline);
      if (url.startsWith('/v1/pipelines/pl_1/runs')) return json({ runs: [cancelled ? { ...queued, status: 'cancelled', finished_at: '2026-03-01T10:00:05Z' } : queued, done], next: null });
      if (url === '/v1/destinations/dst_1') return json({ id: 'dst_1', name: 'Warehouse', type: 'postgresql', settings: {} });
      if (url === '/v1/runs/run_q/cancel') {
        cancelled = true;
        return json({ id: 'run_q', cancelling: true }, 202);
      }
      return json({ error: { code: 'NotFound', message: url } }, 404);
    });
    vi.stubGlobal('fetch', fetch);
    root = await mount(<RunsPage id="pl_1" />);
    await vi.waitFor(() => expect(root.textContent).toContain('Run history'));
    expect(root.textContent).toContain('Waiting for a free slot');
    expect(root.textContent).toMatch(/next run in (9|10) minutes/);
    expect(root.textContent).toContain('Queued…');
    const cancel = root.querySelector<HTMLButtonElement>('button[aria-label="Cancel queued run run_q"]');
    expect(cancel).toBeTruthy();
    // A finished run offers no Cancel.
    expect(root.querySelector('button[aria-label^="Cancel succeeded"]')).toBeNull();
    await act(() => cancel!.click());
    await vi.waitFor(() => expect(calls).toContain('POST /v1/runs/run_q/cancel'));
    await vi.waitFor(() => expect(root.querySelector('button[aria-label="Cancel queued run run_q"]')).toBeNull());
    expect(root.textContent).toContain('The queued run is cancelled.');
  });

  it('starts a reconcile run with its button', async () => {
    const bodies: unknown[] = [];
    const idle = { ...pipeline, running: null };
    const fetch = vi.fn(async (url: string, init?: RequestInit) => {
      if (url === '/v1/pipelines/pl_1') return json(idle);
      if (url.startsWith('/v1/pipelines/pl_1/runs') && init?.method === 'POST') {
        bodies.push(JSON.parse(String(init.body)));
        return json({ id: 'run_r', status: 'running' }, 202);
      }
      if (url.startsWith('/v1/pipelines/pl_1/runs')) return json({ runs: [done], next: null });
      if (url === '/v1/destinations/dst_1') return json({ id: 'dst_1', name: 'Warehouse', type: 'postgresql', settings: {} });
      return json({ error: { code: 'NotFound', message: url } }, 404);
    });
    vi.stubGlobal('fetch', fetch);
    root = await mount(<RunsPage id="pl_1" />);
    await vi.waitFor(() => expect(root.textContent).toContain('Run history'));
    const button = Array.from(root.querySelectorAll<HTMLButtonElement>('button')).find((b) => b.textContent?.trim() === 'Reconcile');
    expect(button).toBeTruthy();
    expect(button!.disabled).toBe(false);
    await act(() => button!.click());
    await vi.waitFor(() => expect(bodies).toEqual([{ trigger: 'manual', mode: 'reconcile' }]));
  });
});

describe('a dry run from the runs page', () => {
  let root: HTMLElement;
  afterEach(() => unmount(root));

  it('shows what a run would do, with sample rows, on a disabled pipeline too', async () => {
    const bodies: unknown[] = [];
    const disabled = { ...pipeline, running: null, enabled: false };
    let polls = 0;
    const dry: Run = {
      ...done,
      id: 'dry_1',
      dry_run: true,
      counts: { ...counts, read: 4, inserted: 2, updated: 1, unchanged: 5, deleted: 1, filtered_out: 3 },
      samples: {
        inserts: [{ profile: 'c1', key: 'c1', row: { id: 'c1', email: 'a@b.c', ltv: 12.5 } }],
        updates: [{ profile: 'c2', key: 'c2', changes: [{ column: 'city', before: 'Rome', after: 'Milan' }] }],
        deletes: [{ key: 'c9' }],
      },
    };
    const fetch = vi.fn(async (url: string, init?: RequestInit) => {
      if (url === '/v1/pipelines/pl_1') return json(disabled);
      if (url.startsWith('/v1/pipelines/pl_1/runs') && init?.method === 'POST') {
        bodies.push(JSON.parse(String(init.body)));
        return json({ id: 'dry_1', status: 'queued' }, 202);
      }
      if (url.startsWith('/v1/pipelines/pl_1/runs')) return json({ runs: [done], next: null });
      if (url === '/v1/runs/dry_1') {
        polls += 1;
        return json(polls < 2 ? { ...dry, status: 'running', finished_at: null } : dry);
      }
      if (url === '/v1/destinations/dst_1') return json({ id: 'dst_1', name: 'Warehouse', type: 'postgresql', settings: {} });
      return json({ error: { code: 'NotFound', message: url } }, 404);
    });
    vi.stubGlobal('fetch', fetch);
    root = await mount(<RunsPage id="pl_1" />);
    await vi.waitFor(() => expect(root.textContent).toContain('Run history'));
    const button = Array.from(root.querySelectorAll<HTMLButtonElement>('button')).find((b) => b.textContent?.trim() === 'Dry run');
    expect(button).toBeTruthy();
    expect(button!.disabled).toBe(false);
    await act(() => button!.click());
    await vi.waitFor(() => expect(bodies).toEqual([{ trigger: 'manual', dry_run: true }]));
    await vi.waitFor(() => expect(root.querySelector('[data-testid="dry-run-summary"]')).toBeTruthy(), { timeout: 3000 });
    expect(root.querySelector('[data-testid="dry-run-summary"]')!.textContent).toBe(
      'A run would do: 8 in audience, 3 written (2 new, 1 updated), 5 skipped, unchanged, 3 not in audience, 1 removed',
    );
    expect(root.textContent).toContain('Nothing was written');
    expect(root.textContent).toContain('a@b.c');
    expect(root.textContent).toContain('city Rome → Milan');
    expect(root.textContent).toContain('Removed rows');
    // Closed, it leaves the page as it was.
    const close = Array.from(root.querySelectorAll<HTMLButtonElement>('button')).find((b) => b.textContent?.trim() === 'Close');
    await act(() => close!.click());
    expect(root.querySelector('[data-testid="dry-run-summary"]')).toBeNull();
  });
});

describe('cancelling a dry run from the runs page', () => {
  let root: HTMLElement;
  afterEach(() => unmount(root));

  const going: Run = { ...queued, id: 'dry_2', dry_run: true, status: 'running', trigger: 'manual', started_at: '2026-03-01T10:00:00Z' };

  async function start() {
    let cancelled = false;
    const posts: string[] = [];
    const fetch = vi.fn(async (url: string, init?: RequestInit) => {
      if (init?.method === 'POST') posts.push(url);
      if (url === '/v1/pipelines/pl_1') return json({ ...pipeline, running: null });
      if (url.startsWith('/v1/pipelines/pl_1/runs') && init?.method === 'POST') return json({ id: 'dry_2', status: 'queued' }, 202);
      if (url.startsWith('/v1/pipelines/pl_1/runs')) return json({ runs: [done], next: null });
      if (url === '/v1/runs/dry_2/cancel') {
        cancelled = true;
        return json({ id: 'dry_2', cancelling: true }, 202);
      }
      if (url === '/v1/runs/dry_2') return json(cancelled ? { ...going, status: 'cancelled', finished_at: '2026-03-01T10:00:01Z', message: 'cancelled; a dry run writes nothing' } : going);
      if (url === '/v1/destinations/dst_1') return json({ id: 'dst_1', name: 'Warehouse', type: 'postgresql', settings: {} });
      return json({ error: { code: 'NotFound', message: url } }, 404);
    });
    vi.stubGlobal('fetch', fetch);
    root = await mount(<RunsPage id="pl_1" />);
    await vi.waitFor(() => expect(root.textContent).toContain('Run history'));
    const button = Array.from(root.querySelectorAll<HTMLButtonElement>('button')).find((b) => b.textContent?.trim() === 'Dry run');
    await act(() => button!.click());
    await vi.waitFor(() => expect(root.textContent).toContain('profiles looked at'));
    return posts;
  }

  const buttonNamed = (name: string) => Array.from(root.querySelectorAll<HTMLButtonElement>('button')).find((b) => b.textContent?.trim() === name);

  it('stops a going dry run and says it was cancelled, not failed', async () => {
    const posts = await start();
    await act(() => buttonNamed('Cancel')!.click());
    await vi.waitFor(() => expect(posts).toContain('/v1/runs/dry_2/cancel'));
    await vi.waitFor(() => expect(root.textContent).toContain('The dry run was cancelled'), { timeout: 3000 });
    expect(root.textContent).not.toContain('The dry run failed');
    expect(buttonNamed('Cancel')).toBeUndefined();
  });

  it('stops a going dry run when its result is closed', async () => {
    const posts = await start();
    await act(() => buttonNamed('Close')!.click());
    await vi.waitFor(() => expect(posts).toContain('/v1/runs/dry_2/cancel'));
    expect(root.textContent).not.toContain('profiles looked at');
  });
});

describe('the runs page clock', () => {
  let root: HTMLElement;
  afterEach(() => {
    vi.useRealTimers();
    unmount(root);
  });

  it('measures a run started after the page sat idle against the time now', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(new Date('2026-03-01T10:00:00Z'));
    const idle = { ...pipeline, running: null, schedule: null, next_run_at: null };
    let started: Run | null = null;
    const fetch = vi.fn(async (url: string, init?: RequestInit) => {
      if (url === '/v1/pipelines/pl_1') return json(started ? { ...idle, running: started.id } : idle);
      if (url.startsWith('/v1/pipelines/pl_1/runs') && init?.method === 'POST') {
        started = { ...queued, id: 'run_n', status: 'running', trigger: 'manual', queued_at: new Date().toISOString(), started_at: new Date().toISOString() };
        return json({ id: 'run_n', status: 'running' }, 202);
      }
      if (url.startsWith('/v1/pipelines/pl_1/runs')) return json({ runs: started ? [started, done] : [done], next: null });
      if (url === '/v1/destinations/dst_1') return json({ id: 'dst_1', name: 'Warehouse', type: 'postgresql', settings: {} });
      return json({ error: { code: 'NotFound', message: url } }, 404);
    });
    vi.stubGlobal('fetch', fetch);
    root = await mount(<RunsPage id="pl_1" />);
    await vi.waitFor(() => expect(root.textContent).toContain('Run history'));
    // The page sits idle for ten minutes, then Run now is pressed.
    vi.setSystemTime(new Date('2026-03-01T10:10:00Z'));
    const button = Array.from(root.querySelectorAll<HTMLButtonElement>('button')).find((b) => b.textContent?.includes('Run now'));
    await act(() => button!.click());
    await vi.waitFor(() => expect(root.textContent).toContain('Current run'));
    expect(root.textContent).not.toMatch(/-\d/);
    expect(root.textContent).not.toContain('in a moment');
    expect(root.textContent).toContain('just now');
  });
});
