// Pure helpers of the pipeline editor: building the pipeline object from the editor's state, script
// templates, and sorting the API's field errors to the part of the form they belong to.

import type { FieldErrors, FilterGroup, OnLeave, PipelineInput, Schedule, TableDescription, Transformation } from '../api';
import { normalizeFilter } from './filter';
import { isUnder } from './util';

export type TransformKind = 'mapping' | 'javascript' | 'python';

export interface EditorState {
  destination: string;
  name: string;
  description: string;
  enabled: boolean;
  filter: FilterGroup | null;
  table: string;
  key: string;
  kind: TransformKind;
  mapping: Record<string, string>;
  javascript: string;
  python: string;
  schedule: Schedule;
  on_leave: OnLeave;
  /** The pipeline's alert webhook as typed; empty means none (the workspace's, if set, still applies). */
  alert_webhook: string;
  /** How often a scheduled run is a reconcile (`1d`); empty means never. */
  reconcile_every: string;
}

/** The mapping to send: non-empty expressions, in the table's column order when it is known. */
export function cleanMapping(mapping: Record<string, string>, table?: TableDescription | null): Record<string, string> {
  const out: Record<string, string> = {};
  const order = table ? [...table.columns.map((c) => c.name), ...Object.keys(mapping).filter((k) => !table.columns.some((c) => c.name === k))] : Object.keys(mapping);
  for (const col of order) {
    const expr = mapping[col];
    if (expr !== undefined && expr.trim() !== '') out[col] = expr.trim();
  }
  return out;
}

export function transformationOf(s: EditorState, table?: TableDescription | null): Transformation {
  switch (s.kind) {
    case 'javascript':
      return { javascript: s.javascript };
    case 'python':
      return { python: s.python };
    default:
      return { mapping: cleanMapping(s.mapping, table) };
  }
}

export function toPipelineInput(s: EditorState, table?: TableDescription | null): PipelineInput {
  return {
    destination: s.destination,
    name: s.name.trim(),
    description: s.description.trim(),
    enabled: s.enabled,
    filter: normalizeFilter(s.filter),
    table: s.table.trim(),
    key: s.key,
    transformation: transformationOf(s, table),
    schedule: s.schedule,
    on_leave: s.on_leave,
    // Left out when empty: a replace (PUT) without it removes the pipeline's webhook.
    ...(s.alert_webhook.trim() ? { alert_webhook: s.alert_webhook.trim() } : {}),
    // Left out when off, as the webhook: the editor saves with a replace (PUT), which then turns it off.
    ...(s.reconcile_every.trim() ? { reconcile_every: s.reconcile_every.trim() } : {}),
  };
}

/** The editor's state for a saved pipeline (or a new one of this destination). */
export function editorState(p: Partial<PipelineInput> & { destination: string }): EditorState {
  const t = p.transformation;
  return {
    destination: p.destination,
    name: p.name ?? '',
    description: p.description ?? '',
    enabled: p.enabled ?? false,
    filter: p.filter ?? null,
    table: p.table ?? '',
    key: p.key ?? '',
    kind: t && 'javascript' in t ? 'javascript' : t && 'python' in t ? 'python' : 'mapping',
    mapping: t && 'mapping' in t ? { ...t.mapping } : {},
    javascript: t && 'javascript' in t ? t.javascript : '',
    python: t && 'python' in t ? t.python : '',
    schedule: p.schedule ?? null,
    on_leave: p.on_leave ?? 'keep',
    alert_webhook: p.alert_webhook ?? '',
    reconcile_every: p.reconcile_every ?? '',
  };
}

function jsKey(name: string): string {
  return /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(name) ? name : JSON.stringify(name);
}

/** A starting script that maps the key column from `_id` and lists the other columns. */
export function scriptTemplate(kind: 'javascript' | 'python', table: TableDescription | null, key: string): string {
  const cols = table?.columns.map((c) => c.name) ?? [];
  const keyCol = key || cols[0] || 'id';
  const others = cols.filter((c) => c !== keyCol).slice(0, 6);
  if (kind === 'javascript') {
    const lines = [`    ${jsKey(keyCol)}: profile._id,`, ...others.map((c) => `    // ${jsKey(c)}: profile.${c},`)];
    return [
      '// Return an object keyed by column name, or null to skip the profile.',
      '// `columns` lists the columns this pipeline writes (add the ones you return); other columns are left alone.',
      `const columns = [${JSON.stringify(keyCol)}];`,
      '',
      'function transform(profile) {',
      '  return {',
      ...lines,
      '  };',
      '}',
      '',
    ].join('\n');
  }
  const lines = [`        ${JSON.stringify(keyCol)}: profile["_id"],`, ...others.map((c) => `        # ${JSON.stringify(c)}: profile.get(${JSON.stringify(c)}),`)];
  return [
    '# Return a dict keyed by column name, or None to skip the profile.',
    '# `columns` lists the columns this pipeline writes (add the ones you return); other columns are left alone.',
    `columns = [${JSON.stringify(keyCol)}]`,
    '',
    'def transform(profile):',
    '    return {',
    ...lines,
    '    }',
    '',
  ].join('\n');
}

/** Where an error path is shown in the editor. */
export type ErrorPlace = 'name' | 'description' | 'filter' | 'table' | 'key' | 'transformation' | 'schedule' | 'reconcile_every' | 'on_leave' | 'alert_webhook' | 'enabled' | 'destination' | 'other';

export function placeOf(path: string): ErrorPlace {
  for (const p of ['name', 'description', 'filter', 'table', 'key', 'transformation', 'schedule', 'reconcile_every', 'on_leave', 'alert_webhook', 'enabled', 'destination'] as const) {
    if (isUnder(path, p)) return p;
  }
  return 'other';
}

/** A label for an error path in the summary list. */
export function describePath(path: string): string {
  const m = /^transformation\.mapping\.(.+)$/.exec(path);
  if (m) return `Column ${m[1]}`;
  if (path.startsWith('filter')) {
    const idx = [...path.matchAll(/conditions\[(\d+)\]/g)].map((x) => Number(x[1]) + 1);
    return idx.length ? `Filter condition ${idx.join('.')}` : 'Filter';
  }
  const labels: Record<string, string> = {
    name: 'Name',
    description: 'Description',
    table: 'Table',
    key: 'Matching column',
    'transformation.javascript': 'JavaScript',
    'transformation.python': 'Python',
    'transformation.mapping': 'Visual mapping',
    transformation: 'Transformation',
    schedule: 'Schedule',
    'schedule.cron': 'Cron expression',
    'schedule.timezone': 'Time zone',
    reconcile_every: 'Reconcile every',
    on_leave: 'On leave',
    alert_webhook: 'Alert webhook',
    destination: 'Destination',
  };
  return labels[path] ?? path;
}

/** Keeps only the errors of the parts checked while typing (filter, key, transformation). */
export function liveSubset(fields: FieldErrors): FieldErrors {
  const out: FieldErrors = {};
  for (const [k, v] of Object.entries(fields)) {
    const place = placeOf(k);
    if (place === 'transformation' || place === 'key' || place === 'filter') out[k] = v;
  }
  return out;
}

/** What the Reconcile button does, for its tooltip. */
export const RECONCILE_HELP =
  'Read the table back and rewrite the rows that are missing or were changed by someone else (rows Sluice did not write are left alone)';
