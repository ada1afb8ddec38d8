// Small helpers: field-error lookup by API path, formatting of times, durations and numbers, schedules
// and the key-capable columns of a table.

import type { FieldErrors, Schedule, SourceSchedule, TableColumn, TableDescription } from '../api';

// Field errors ------------------------------------------------------------------------------------

/** Whether `path` is `prefix` or lies under it (`prefix.x`, `prefix[0]`), but not `prefix0`. */
export function isUnder(path: string, prefix: string): boolean {
  if (path === prefix) return true;
  if (!path.startsWith(prefix)) return false;
  const next = path.charAt(prefix.length);
  return next === '.' || next === '[';
}

/** Messages for exactly `path`. */
export function errorsAt(fields: FieldErrors | undefined, path: string): string[] {
  return fields?.[path] ?? [];
}

/** Messages for `path` and everything under it. */
export function errorsUnder(fields: FieldErrors | undefined, path: string): string[] {
  if (!fields) return [];
  const out: string[] = [];
  for (const [k, v] of Object.entries(fields)) if (isUnder(k, path)) out.push(...v);
  return out;
}

export function mergeErrors(...all: (FieldErrors | undefined)[]): FieldErrors {
  const out: FieldErrors = {};
  for (const f of all) {
    if (!f) continue;
    for (const [k, v] of Object.entries(f)) out[k] = [...(out[k] ?? []), ...v];
  }
  return out;
}

export function countErrors(fields: FieldErrors | undefined): number {
  return Object.values(fields ?? {}).reduce((n, v) => n + v.length, 0);
}

// Formatting --------------------------------------------------------------------------------------

const numberFmt = new Intl.NumberFormat('en-US');

export function formatNumber(n: number | null | undefined): string {
  return n === null || n === undefined ? '—' : numberFmt.format(n);
}

export function formatDateTime(iso: string | null | undefined): string {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return d.toLocaleString('en-GB', {
    year: 'numeric',
    month: 'short',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
  });
}

export function formatDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s < 10 ? s.toFixed(1) : Math.round(s)} s`;
  const m = Math.floor(s / 60);
  const rest = Math.round(s % 60);
  if (m < 60) return `${m} min ${rest} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

export function relativeTime(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return '—';
  const t = new Date(iso).getTime();
  if (Number.isNaN(t)) return iso;
  const s = Math.round((now - t) / 1000);
  if (Math.abs(s) < 45) return s >= 0 ? 'just now' : 'in a moment';
  const units: [number, string][] = [
    [60, 'minute'],
    [3600, 'hour'],
    [86400, 'day'],
  ];
  let value = s / 60;
  let unit = 'minute';
  for (const [secs, name] of units) {
    if (Math.abs(s) >= secs) {
      value = s / secs;
      unit = name;
    }
  }
  const n = Math.round(Math.abs(value));
  const label = `${n} ${unit}${n === 1 ? '' : 's'}`;
  return s >= 0 ? `${label} ago` : `in ${label}`;
}

// Schedules ---------------------------------------------------------------------------------------

export const INTERVALS: { value: string; label: string }[] = [
  { value: '5m', label: 'Every 5 minutes' },
  { value: '15m', label: 'Every 15 minutes' },
  { value: '30m', label: 'Every 30 minutes' },
  { value: '1h', label: 'Every hour' },
  { value: '2h', label: 'Every 2 hours' },
  { value: '3h', label: 'Every 3 hours' },
  { value: '6h', label: 'Every 6 hours' },
  { value: '8h', label: 'Every 8 hours' },
  { value: '12h', label: 'Every 12 hours' },
  { value: '24h', label: 'Every 24 hours' },
];

/** The intervals only source pipelines have: a source polled every few seconds keeps an `on_change`
 *  export seconds behind its database. Exports follow changes with `on_change` instead. */
export const SOURCE_INTERVALS: { value: string; label: string }[] = [
  { value: '5s', label: 'Every 5 seconds' },
  { value: '10s', label: 'Every 10 seconds' },
  { value: '15s', label: 'Every 15 seconds' },
  { value: '30s', label: 'Every 30 seconds' },
  { value: '1m', label: 'Every minute' },
  { value: '2m', label: 'Every 2 minutes' },
];

/** The schedule that runs a pipeline as soon as profiles change (debounced by the server). */
export const ON_CHANGE = { value: 'on_change', label: 'When profiles change' } as const;

export function scheduleLabel(s: Schedule | SourceSchedule | undefined): string {
  if (s === null || s === undefined) return 'Off';
  if (s === ON_CHANGE.value) return ON_CHANGE.label;
  if (typeof s === 'string') return [...SOURCE_INTERVALS, ...INTERVALS].find((i) => i.value === s)?.label ?? s;
  return `Cron ${s.cron} (${s.timezone || 'UTC'})`;
}

export function scheduleShort(s: Schedule | undefined): string {
  if (s === null || s === undefined) return 'Off';
  if (s === ON_CHANGE.value) return 'on change';
  if (typeof s === 'string') return s === '1d' ? '24h' : s;
  return s.cron;
}

/** Old IANA names that browsers still list (they follow CLDR, which keeps a zone's first name) and the
 *  current name each is a link to. The server accepts both; people look for the current one. */
const ZONE_RENAMES: Record<string, string> = {
  'Africa/Asmera': 'Africa/Asmara',
  'America/Buenos_Aires': 'America/Argentina/Buenos_Aires',
  'America/Catamarca': 'America/Argentina/Catamarca',
  'America/Cordoba': 'America/Argentina/Cordoba',
  'America/Jujuy': 'America/Argentina/Jujuy',
  'America/Mendoza': 'America/Argentina/Mendoza',
  'America/Coral_Harbour': 'America/Atikokan',
  'America/Godthab': 'America/Nuuk',
  'America/Indianapolis': 'America/Indiana/Indianapolis',
  'America/Louisville': 'America/Kentucky/Louisville',
  'America/Fort_Wayne': 'America/Indiana/Indianapolis',
  'Asia/Calcutta': 'Asia/Kolkata',
  'Asia/Dacca': 'Asia/Dhaka',
  'Asia/Katmandu': 'Asia/Kathmandu',
  'Asia/Macao': 'Asia/Macau',
  'Asia/Rangoon': 'Asia/Yangon',
  'Asia/Saigon': 'Asia/Ho_Chi_Minh',
  'Asia/Thimbu': 'Asia/Thimphu',
  'Asia/Ujung_Pandang': 'Asia/Makassar',
  'Asia/Ulan_Bator': 'Asia/Ulaanbaatar',
  'Atlantic/Faeroe': 'Atlantic/Faroe',
  'Europe/Kiev': 'Europe/Kyiv',
  'Europe/Uzhgorod': 'Europe/Kyiv',
  'Europe/Zaporozhye': 'Europe/Kyiv',
  'Pacific/Enderbury': 'Pacific/Kanton',
  'Pacific/Ponape': 'Pacific/Pohnpei',
  'Pacific/Truk': 'Pacific/Chuuk',
  'Pacific/Yap': 'Pacific/Chuuk',
};

/** The current IANA name of a time zone (`Asia/Calcutta` → `Asia/Kolkata`); other names unchanged. */
export function currentZoneName(zone: string): string {
  return ZONE_RENAMES[zone] ?? zone;
}

/** The time zones to offer, by their current names, each once, sorted, with UTC first. `zones` is what
 *  the engine lists (given in tests). A stored old name is not in the list: the selects add the value
 *  they hold, so it still shows and stays selected. */
export function timeZones(zones?: string[]): string[] {
  let list = zones;
  if (!list) {
    const intl = Intl as unknown as { supportedValuesOf?: (k: string) => string[] };
    try {
      list = intl.supportedValuesOf?.('timeZone');
    } catch {
      /* older engines */
    }
  }
  if (!list || !list.length) list = ['UTC', 'Europe/London', 'Europe/Rome', 'Europe/Berlin', 'America/New_York', 'America/Los_Angeles', 'Asia/Tokyo'];
  const names = [...new Set(list.map(currentZoneName))].filter((z) => z !== 'UTC').sort();
  return ['UTC', ...names];
}

/** The time zone of the browser (a current IANA name), `UTC` when the engine does not tell. */
export function browserTimeZone(): string {
  try {
    return currentZoneName(Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC');
  } catch {
    return 'UTC';
  }
}

/** What the pipelines table says about the next scheduled run: a short text, and the exact time for
 *  the hover title (null when there is no time to show). */
export function nextRunInfo(
  p: { schedule: Schedule | undefined; enabled: boolean; next_run_at?: string | null },
  now = Date.now(),
): { text: string; exact: string | null } | null {
  if (p.schedule === null || p.schedule === undefined) return null;
  if (!p.enabled) return { text: 'paused (disabled)', exact: null };
  if (p.schedule === ON_CHANGE.value) return { text: 'runs when profiles change', exact: null };
  if (!p.next_run_at) return null;
  const t = new Date(p.next_run_at).getTime();
  if (Number.isNaN(t)) return null;
  const exact = formatDateTime(p.next_run_at);
  // The server answers "now" while a follow-up run waits for the current one to end.
  if (t - now < 45_000) return { text: 'next run: due now', exact };
  return { text: `next run ${relativeTime(p.next_run_at, now)}`, exact };
}

/** What started a run, with the profile changes that set off an `on_change` run. */
export function triggerLabel(r: { trigger: string; changes?: { changed: number; deleted: number } | null }): string {
  if (!r.changes) return r.trigger;
  const parts = [`${formatNumber(r.changes.changed)} changed`];
  if (r.changes.deleted > 0) parts.push(`${formatNumber(r.changes.deleted)} deleted`);
  return `${r.trigger} (${parts.join(', ')})`;
}

/** A schedule's field errors split between the choice itself and the cron inputs. */
export function scheduleErrors(fields: FieldErrors | undefined): { schedule: string[]; cron: string[]; timezone: string[] } {
  return {
    schedule: errorsAt(fields, 'schedule'),
    cron: errorsUnder(fields, 'schedule.cron'),
    timezone: errorsUnder(fields, 'schedule.timezone'),
  };
}

/** A quick check of a 5-field cron expression (the server makes the real one). */
export function cronProblem(expr: string): string | null {
  const parts = expr.trim().split(/\s+/).filter(Boolean);
  if (parts.length !== 5) return 'a cron expression has 5 fields: minute hour day-of-month month day-of-week';
  if (!parts.every((p) => /^[\d*,\-/A-Za-z?LW#]+$/.test(p))) return 'the expression has characters cron does not use';
  return null;
}

// Tables ------------------------------------------------------------------------------------------

const KEY_TYPE = /(char|text|string|int|serial|uuid|long|short)/i;

/** Columns that can be the matching column: string, integer or UUID columns that are alone a primary or
 *  unique key. Uses the server's `key_capable` when present. */
export function keyCapableColumns(table: TableDescription): TableColumn[] {
  if (table.columns.some((c) => c.key_capable !== undefined)) return table.columns.filter((c) => c.key_capable);
  const single = new Set(table.keys.filter((k) => k.length === 1).map((k) => k[0]));
  return table.columns.filter((c) => single.has(c.name) && KEY_TYPE.test(c.type) && !/(float|double|real|numeric|decimal)/i.test(c.type));
}

export function isKeyColumn(table: TableDescription, column: string): boolean {
  return table.keys.some((k) => k.includes(column));
}

export function classNames(...xs: (string | false | null | undefined)[]): string {
  return xs.filter(Boolean).join(' ');
}
