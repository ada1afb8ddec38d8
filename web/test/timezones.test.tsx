// Time zones are offered by their current IANA names, and a schedule stored with an old name still shows it.
import { afterEach, describe, expect, it } from 'vitest';
import { CronDialog } from '../src/pages/DestinationPage';
import { currentZoneName, timeZones } from '../src/lib/util';
import { mount, unmount } from './mount';

describe('time zones', () => {
  it('offers Asia/Kolkata and Europe/Kyiv, not the names they replaced, each once', () => {
    const zones = timeZones(['Asia/Calcutta', 'Europe/Kiev', 'Europe/Kyiv', 'Europe/Rome', 'Europe/Uzhgorod', 'America/Godthab']);
    expect(zones).toEqual(['UTC', 'America/Nuuk', 'Asia/Kolkata', 'Europe/Kyiv', 'Europe/Rome']);
  });

  it('maps what this engine lists to current names only', () => {
    const zones = timeZones();
    expect(zones[0]).toBe('UTC');
    expect(zones).not.toContain('Asia/Calcutta');
    expect(zones).not.toContain('Europe/Kiev');
    expect(zones).toContain('Asia/Kolkata');
    expect(zones).toContain('Europe/Kyiv');
    expect(new Set(zones).size).toBe(zones.length);
    expect(currentZoneName('Europe/Rome')).toBe('Europe/Rome');
  });
});

describe('the cron dialog', () => {
  let root: HTMLElement;
  afterEach(() => unmount(root));

  it('keeps a schedule stored with an old zone name selected', async () => {
    root = await mount(<CronDialog name="Export" initial={{ cron: '0 3 * * *', timezone: 'Asia/Calcutta' }} onClose={() => {}} onSave={async () => {}} />);
    const select = document.querySelector<HTMLSelectElement>('select')!;
    expect(select.value).toBe('Asia/Calcutta');
    const options = Array.from(select.options).map((o) => o.value);
    expect(options).toContain('Asia/Kolkata');
    expect(options.filter((o) => o === 'Asia/Calcutta')).toHaveLength(1);
  });
});
