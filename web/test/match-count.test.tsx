// The filter builder's "matches N of M profiles" while a filter is edited, and the profiles page's totals,
// both from the store's counts in GET /v1/profiles (total, matching).
import { afterEach, describe, expect, it, vi } from 'vitest';
import { MatchCount, matchText } from '../src/components/FilterBuilder';
import { ProfilesPage, profilesHeadline } from '../src/pages/Profiles';
import { schema } from './fixtures';
import { json, mount, unmount } from './mount';

const italy = { logical: 'and' as const, conditions: [{ property: 'country', operator: 'is', values: ['IT'] }] };

describe('the words of the counts', () => {
  it('words', () => {
    expect(matchText({ matching: 1234, total: 10000 }, false)).toBe('Matches 1,234 of 10,000 profiles.');
    expect(matchText({ matching: null, total: 10000 }, false)).toBe('No conditions: all 10,000 profiles.');
    expect(matchText(null, true)).toMatch(/Complete the conditions/);
    expect(profilesHeadline({ profiles: [1, 2], total: 10000 }, 1)).toBe('Page 1 · 2 profiles · 10,000 in total');
    expect(profilesHeadline({ profiles: [1], total: 10000, matching: 480 }, 2)).toBe('Page 2 · 1 profile · 480 of 10,000 match the filter');
  });

});

describe('counting the profiles a filter matches', () => {
  let root: HTMLElement;
  afterEach(() => unmount(root));

  it('asks the store once the filter settles, and shows its count', async () => {
    const urls: string[] = [];
    vi.stubGlobal(
      'fetch',
      vi.fn(async (url: string) => {
        urls.push(url);
        return json({ profiles: [], next: null, total: 10000, matching: url.includes('filter=') ? 9520 : undefined });
      }),
    );
    root = await mount(<MatchCount filter={italy} incomplete={false} />);
    await vi.waitFor(() => expect(root.textContent).toBe('Matches 9,520 of 10,000 profiles.'), { timeout: 2000 });
    expect(urls).toHaveLength(1);
    expect(decodeURIComponent(urls[0])).toContain('"values":["IT"]');
    expect(urls[0]).toContain('limit=1');
  });

  it('the profiles page shows the total', async () => {
    vi.stubGlobal(
      'fetch',
      vi.fn(async (url: string) => {
        if (url.startsWith('/v1/profile-schema')) return json(schema);
        if (url.startsWith('/v1/profiles')) return json({ profiles: [{ _id: 'c1', _updated_at: '2026-03-01T08:00:00Z' }], next: 'c1', total: 10000 });
        return json({ error: { code: 'NotFound', message: url } }, 404);
      }),
    );
    root = await mount(<ProfilesPage />);
    await vi.waitFor(() => expect(root.textContent).toContain('10,000 in total'));
    await vi.waitFor(() => expect(root.textContent).toContain('No conditions: all 10,000 profiles.'), { timeout: 2000 });
  });
});
