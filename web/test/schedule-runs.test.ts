// The logic added for schedules' next run, alert webhooks and queued runs: what the pipelines table
// says about the next run, where schedule and webhook errors are shown, how the editor sends the
// webhook, and how queued runs are described and cancelled.
import { describe, expect, it, vi } from 'vitest';
import { ApiError, Client, type Run } from '../src/api';
import { describePath, editorState, placeOf, toPipelineInput } from '../src/lib/pipeline';
import { browserTimeZone, nextRunInfo, scheduleErrors, scheduleLabel, scheduleShort, triggerLabel } from '../src/lib/util';
import { runStateNote, runTimeLabel } from '../src/pages/Runs';

const NOW = Date.parse('2026-03-01T10:00:00Z');
const at = (offsetS: number) => new Date(NOW + offsetS * 1000).toISOString();

describe('the next run of a schedule', () => {
  it('says nothing when the schedule is off', () => {
    expect(nextRunInfo({ schedule: null, enabled: true, next_run_at: null }, NOW)).toBeNull();
    expect(nextRunInfo({ schedule: undefined, enabled: true }, NOW)).toBeNull();
  });

  it('shows a disabled, scheduled pipeline as paused', () => {
    expect(nextRunInfo({ schedule: '15m', enabled: false, next_run_at: null }, NOW)).toEqual({ text: 'paused (disabled)', exact: null });
  });

  it('gives the time relative to now, and the exact time for the hover', () => {
    const info = nextRunInfo({ schedule: '15m', enabled: true, next_run_at: at(14 * 60 + 50) }, NOW);
    expect(info?.text).toBe('next run in 15 minutes');
    expect(info?.exact).toMatch(/2026/);
    expect(nextRunInfo({ schedule: { cron: '0 3 * * *', timezone: 'Europe/Rome' }, enabled: true, next_run_at: at(5 * 3600) }, NOW)?.text).toBe('next run in 5 hours');
  });

  it('says an on_change pipeline runs when profiles change', () => {
    expect(nextRunInfo({ schedule: 'on_change', enabled: true, next_run_at: null }, NOW)).toEqual({ text: 'runs when profiles change', exact: null });
    expect(nextRunInfo({ schedule: 'on_change', enabled: false, next_run_at: null }, NOW)?.text).toBe('paused (disabled)');
    expect(scheduleLabel('on_change')).toBe('When profiles change');
    expect(scheduleShort('on_change')).toBe('on change');
  });

  it('names the changes that set off an on_change run', () => {
    expect(triggerLabel({ trigger: 'manual' })).toBe('manual');
    expect(triggerLabel({ trigger: 'on_change', changes: { changed: 1500, deleted: 0 } })).toMatch(/^on_change \(1[,.\u202f\u00a0]?500 changed\)$/);
    expect(triggerLabel({ trigger: 'on_change', changes: { changed: 3, deleted: 2 } })).toBe('on_change (3 changed, 2 deleted)');
  });

  it('says "due now" when the time has come (a follow-up run waits)', () => {
    expect(nextRunInfo({ schedule: '5m', enabled: true, next_run_at: at(0) }, NOW)?.text).toBe('next run: due now');
    expect(nextRunInfo({ schedule: '5m', enabled: true, next_run_at: at(-120) }, NOW)?.text).toBe('next run: due now');
  });

  it('shows nothing for a time it cannot read, or none yet', () => {
    expect(nextRunInfo({ schedule: '1h', enabled: true, next_run_at: 'soon' }, NOW)).toBeNull();
    expect(nextRunInfo({ schedule: '1h', enabled: true, next_run_at: null }, NOW)).toBeNull();
  });

  it('defaults the cron time zone to the browser', () => {
    expect(browserTimeZone()).toBe(Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC');
  });

  it('splits schedule errors between the choice, the cron expression and the time zone', () => {
    const e = scheduleErrors({ schedule: ['unknown schedule `7m`'], 'schedule.cron': ['`0 3 * *` has 4 fields'], 'schedule.timezone': ['unknown time zone `Mars/Base`'], name: ['x'] });
    expect(e).toEqual({ schedule: ['unknown schedule `7m`'], cron: ['`0 3 * *` has 4 fields'], timezone: ['unknown time zone `Mars/Base`'] });
    expect(scheduleErrors(undefined)).toEqual({ schedule: [], cron: [], timezone: [] });
    expect(describePath('schedule.timezone')).toBe('Time zone');
  });
});

describe('the alert webhook in the editor', () => {
  const base = { destination: 'd', name: 'P', table: 't', key: 'k', transformation: { mapping: { k: '_id' } } };

  it('reads it back and sends it trimmed', () => {
    const s = editorState({ ...base, alert_webhook: 'https://hooks.example.com/a' });
    expect(s.alert_webhook).toBe('https://hooks.example.com/a');
    expect(toPipelineInput({ ...s, alert_webhook: '  https://hooks.example.com/b ' }).alert_webhook).toBe('https://hooks.example.com/b');
  });

  it('leaves it out when empty, so saving removes it', () => {
    const s = editorState({ ...base, alert_webhook: null });
    expect(s.alert_webhook).toBe('');
    expect('alert_webhook' in toPipelineInput(s)).toBe(false);
    expect('alert_webhook' in toPipelineInput({ ...s, alert_webhook: '   ' })).toBe(false);
  });

  it('sends what the user typed, however wrong, for the API to judge', () => {
    expect(toPipelineInput({ ...editorState(base), alert_webhook: 'ftp://x' }).alert_webhook).toBe('ftp://x');
  });

  it('shows its errors next to its field, not among the others', () => {
    expect(placeOf('alert_webhook')).toBe('alert_webhook');
    expect(placeOf('schedule.cron')).toBe('schedule');
    expect(describePath('alert_webhook')).toBe('Alert webhook');
  });
});

describe('queued runs', () => {
  const run = (over: Partial<Run>): Run => ({
    id: 'run_1',
    pipeline: 'p',
    trigger: 'schedule',
    status: 'queued',
    queued_at: '2026-03-01T10:00:00Z',
    started_at: null,
    finished_at: null,
    duration_ms: null,
    rows_per_second: null,
    written: 0,
    message: null,
    progress: { processed: 0, total: null },
    counts: { read: 0, filtered_out: 0, transform_failed: 0, inserted: 0, updated: 0, unchanged: 0, deleted: 0, failed: 0 },
    errors: [],
    ...over,
  });

  it('shows when a queued run was queued, and a running one when it started', () => {
    expect(runTimeLabel(run({})).text).toMatch(/^queued .*2026/);
    expect(runTimeLabel(run({})).title).toBe('2026-03-01T10:00:00Z');
    expect(runTimeLabel(run({ queued_at: undefined })).text).toBe('queued');
    const r = runTimeLabel(run({ status: 'running', started_at: '2026-03-01T10:01:00Z' }));
    expect(r.text).not.toMatch(/queued/);
    expect(r.title).toBe('2026-03-01T10:01:00Z');
  });

  it('explains why a run waits', () => {
    expect(runStateNote(run({}))).toMatch(/free slot/);
    expect(runStateNote(run({ status: 'running', started_at: '2026-03-01T10:01:00Z' }))).toBeNull();
  });

  it('cancels through POST /v1/runs/{id}/cancel and reports a finished run', async () => {
    const ok = vi.fn(async () => new Response(JSON.stringify({ id: 'run 1', cancelling: true }), { status: 202 }));
    const c = new Client({ getToken: () => 't', fetch: ok as unknown as typeof fetch });
    await expect(c.cancelRun('run 1')).resolves.toEqual({ id: 'run 1', cancelling: true });
    expect(ok.mock.calls[0]).toEqual(['/v1/runs/run%201/cancel', expect.objectContaining({ method: 'POST' })]);

    const done = vi.fn(async () => new Response(JSON.stringify({ error: { code: 'RunNotActive', message: 'the run has finished' } }), { status: 409 }));
    const c2 = new Client({ getToken: () => 't', fetch: done as unknown as typeof fetch });
    const err = await c2.cancelRun('run_1').catch((e) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err).toMatchObject({ status: 409, code: 'RunNotActive', message: 'the run has finished' });
  });
});
