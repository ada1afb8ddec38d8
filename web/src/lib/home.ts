// What the home page shows, computed from the API's answers: runs in progress, failures of the last 24
// hours with their first error, the next scheduled runs, and each destination's last connection test.

import type { Destination, Pipeline, Run } from '../api';

const DAY = 24 * 3600_000;

export interface Failure {
  pipeline: Pipeline;
  run: Run;
  /** The run's first error: its first grouped error, or the message it ended with. */
  firstError: string;
}

export interface Upcoming {
  pipeline: Pipeline;
  at: number;
}

export function destinationHealth(d: Destination): { state: 'ok' | 'failed' | 'untested'; text: string } {
  const t = d.last_test;
  if (!t) return { state: 'untested', text: 'not tested yet' };
  return t.ok ? { state: 'ok', text: 'connection test passed' } : { state: 'failed', text: t.message || 'connection test failed' };
}

/** Runs that failed, or ended with failed rows, within the 24 hours before `now`, newest first. */
export function recentFailures(pipelines: Pipeline[], runs: Map<string, Run[]>, now: number): Failure[] {
  const out: Failure[] = [];
  for (const p of pipelines) {
    for (const r of runs.get(p.id) ?? []) {
      const end = r.finished_at ? new Date(r.finished_at).getTime() : NaN;
      if (Number.isNaN(end) || now - end > DAY) continue;
      const failedRows = r.counts.failed + r.counts.transform_failed;
      if (r.status !== 'failed' && failedRows === 0) continue;
      const firstError = r.errors[0]?.message ?? r.message ?? `${failedRows} rows failed`;
      out.push({ pipeline: p, run: r, firstError });
    }
  }
  return out.sort((a, b) => (b.run.finished_at ?? '').localeCompare(a.run.finished_at ?? ''));
}

/** Enabled pipelines with a next scheduled run, soonest first. */
export function upcomingRuns(pipelines: Pipeline[], limit = 10): Upcoming[] {
  return pipelines
    .filter((p) => p.enabled && p.schedule !== null && p.next_run_at)
    .map((p) => ({ pipeline: p, at: new Date(p.next_run_at as string).getTime() }))
    .filter((u) => !Number.isNaN(u.at))
    .sort((a, b) => a.at - b.at)
    .slice(0, limit);
}
