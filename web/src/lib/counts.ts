// A run's counts in the words people read them by. The API's `counts` fields follow the engine (`read`
// counts only profiles read because they were new or changed, so it is no headline); these figures answer
// "who is in the audience, what was written, what was skipped, what failed". The same words appear in
// the CLI, the quickstart summary and the API's documentation.

import type { Run } from '../api';
import { formatNumber } from './util';

type Counts = Run['counts'];

export interface RunFigures {
  inAudience: number;
  notInAudience: number;
  written: number;
  created: number;
  updated: number;
  unchanged: number;
  removed: number;
  failed: number;
}

export function runFigures(c: Counts): RunFigures {
  return {
    inAudience: c.inserted + c.updated + c.unchanged + c.failed + c.transform_failed,
    notInAudience: c.filtered_out,
    written: c.inserted + c.updated,
    created: c.inserted,
    updated: c.updated,
    unchanged: c.unchanged,
    removed: c.deleted,
    failed: c.failed + c.transform_failed,
  };
}

/** The labels, in the order they are shown. */
export const FIGURE_LABELS = {
  inAudience: 'in audience',
  notInAudience: 'not in audience',
  written: 'written',
  unchanged: 'skipped, unchanged',
  removed: 'removed',
  failed: 'failed',
} as const;

/** One line for a run: "9,520 in audience, 9,520 written (9,520 new, 0 updated), 480 not in audience".
 *  Zero figures are left out, except "in audience" and "written". */
export function countsSummary(c: Counts): string {
  const f = runFigures(c);
  const parts = [`${formatNumber(f.inAudience)} in audience`];
  parts.push(f.written > 0 ? `${formatNumber(f.written)} written (${formatNumber(f.created)} new, ${formatNumber(f.updated)} updated)` : '0 written');
  if (f.unchanged) parts.push(`${formatNumber(f.unchanged)} skipped, unchanged`);
  if (f.notInAudience) parts.push(`${formatNumber(f.notInAudience)} not in audience`);
  if (f.removed) parts.push(`${formatNumber(f.removed)} removed`);
  if (f.failed) parts.push(`${formatNumber(f.failed)} failed`);
  return parts.join(', ');
}

/** The same line for a dry run: "A run would do: 20 in audience, 20 written (20 new, 0 updated)". */
export function dryRunSummary(c: Counts): string {
  return `A run would do: ${countsSummary(c)}`;
}

/** A value of a sample row as a person reads it: text as it is, the rest as JSON, null as "null". */
export function sampleValue(v: unknown): string {
  if (typeof v === 'string') return v;
  return JSON.stringify(v) ?? 'null';
}
