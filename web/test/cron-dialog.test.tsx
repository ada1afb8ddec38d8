// The custom-cron dialog: the browser's time zone by default, and the API's errors next to the cron
// expression and the time zone.
import { render } from 'preact';
import { act } from 'preact/test-utils';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ApiError } from '../src/api';
import { browserTimeZone } from '../src/lib/util';
import { CronDialog } from '../src/pages/DestinationPage';

describe('the custom cron dialog', () => {
  let root: HTMLElement;
  afterEach(() => {
    render(null, root);
    root.remove();
  });

  const control = (label: string) => {
    const l = [...root.querySelectorAll('label')].find((x) => x.textContent?.trim() === label);
    expect(l, label).toBeTruthy();
    return document.getElementById(l!.htmlFor) as HTMLInputElement | HTMLSelectElement;
  };

  it('shows the API errors at the cron expression and the time zone', async () => {
    const onSave = vi.fn(async () => {
      throw new ApiError(422, { code: 'ValidationFailed', message: 'the request has 1 problem', fields: { 'schedule.timezone': ['unknown time zone `Mars/Base`'] } });
    });
    root = document.createElement('div');
    document.body.appendChild(root);
    await act(() => render(<CronDialog name="P" initial={{ cron: '0 3 * * *', timezone: browserTimeZone() }} onClose={() => {}} onSave={onSave} />, root));
    expect(control('Time zone').value).toBe(browserTimeZone());
    const save = [...root.querySelectorAll('button')].find((b) => b.textContent === 'Save schedule')!;
    await act(() => save.click());
    await vi.waitFor(() => expect(onSave).toHaveBeenCalledWith({ cron: '0 3 * * *', timezone: browserTimeZone() }));
    const tz = control('Time zone');
    await vi.waitFor(() => expect(document.getElementById(tz.getAttribute('aria-describedby') ?? '')?.textContent).toContain('unknown time zone'));
    expect(tz.getAttribute('aria-invalid')).toBe('true');
  });

  it('checks the cron expression before asking the API', async () => {
    const onSave = vi.fn(async () => {});
    root = document.createElement('div');
    document.body.appendChild(root);
    await act(() => render(<CronDialog name="P" initial={{ cron: '0 3 * *', timezone: 'UTC' }} onClose={() => {}} onSave={onSave} />, root));
    const save = [...root.querySelectorAll('button')].find((b) => b.textContent === 'Save schedule')!;
    expect(save.disabled).toBe(true);
    expect(root.textContent).toContain('a cron expression has 5 fields');
    expect(control('Cron expression').getAttribute('aria-invalid')).toBe('true');
  });
});
