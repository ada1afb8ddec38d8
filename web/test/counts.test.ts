// Run counts in the words a user reads right.
import { describe, expect, it } from 'vitest';
import { countsSummary, runFigures } from '../src/lib/counts';

const zero = { read: 0, filtered_out: 0, transform_failed: 0, inserted: 0, updated: 0, unchanged: 0, deleted: 0, failed: 0 };

describe('run counts', () => {
  it('a first run of 10,000 profiles with 480 outside the filter', () => {
    const c = { ...zero, read: 9520, filtered_out: 480, inserted: 9520 };
    expect(countsSummary(c)).toBe('9,520 in audience, 9,520 written (9,520 new, 0 updated), 480 not in audience');
    expect(countsSummary(c)).not.toContain('read');
  });

  it('a re-run with nothing new reads 0 yet checks every row of the audience', () => {
    const c = { ...zero, read: 0, unchanged: 9520 };
    expect(countsSummary(c)).toBe('9,520 in audience, 0 written, 9,520 skipped, unchanged');
  });

  it('failures and removals count, and failed rows are in the audience', () => {
    const c = { ...zero, inserted: 2, updated: 3, failed: 1, transform_failed: 4, deleted: 7 };
    expect(runFigures(c)).toMatchObject({ inAudience: 10, written: 5, failed: 5, removed: 7 });
    expect(countsSummary(c)).toBe('10 in audience, 5 written (2 new, 3 updated), 7 removed, 5 failed');
  });
});
