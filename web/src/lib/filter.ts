// Filter logic shared by the filter builder, the pipelines list and the profile browser: which operators
// fit a property's type, how many values each takes and of what kind, how a condition changes when its
// property or operator does, and the readable one-line summary.
//
// Which operators apply to which type, and how many values each takes, is the API's decision: it comes
// from `generated/filter-operators.json`, the answer of `GET /v1/filters/operators` (a Rust test keeps
// the copy current), so the picker can show and edit every condition the API accepts.

import type { Condition, FilterGroup, FilterOperators } from '../api';
import operatorTable from '../generated/filter-operators.json';
import { findProperty, parseType, type PropertyPath, type TypeSpec } from './schema';

/** The operator table the API serves. */
export const FILTER_OPERATORS = operatorTable as FilterOperators;

export type Category = 'string' | 'uuid' | 'number' | 'datetime' | 'date' | 'time' | 'boolean' | 'array' | 'object' | 'json';

export function categoryOf(type: string | TypeSpec): Category {
  const spec = typeof type === 'string' ? parseType(type) : type;
  switch (spec.kind) {
    case 'int':
    case 'float':
    case 'decimal':
      return 'number';
    case 'string':
    case 'uuid':
    case 'datetime':
    case 'date':
    case 'time':
    case 'boolean':
    case 'array':
    case 'object':
    case 'json':
      return spec.kind;
    default:
      return 'json';
  }
}

/** The key of a type in the operator table: its name without parameters, and for an array its element's
 *  (`decimal(12,2)` → `decimal`, `array(decimal(10,2))` → `array(decimal)`, `array(array(int))` →
 *  `array(array)`). */
export function typeKey(type: string | TypeSpec): string {
  const spec = typeof type === 'string' ? parseType(type) : type;
  if (spec.kind !== 'array') return spec.kind;
  const element = spec.element ?? { kind: 'json' };
  return element.kind === 'array' ? 'array(array)' : `array(${element.kind})`;
}

/** The order the picker lists operators in (the API decides which apply). An operator missing here is
 *  listed after these, so a new one shows up before the UI learns its place. */
const DISPLAY_ORDER = [
  'is true',
  'is false',
  'is',
  'is not',
  'is less than',
  'is less than or equal to',
  'is greater than',
  'is greater than or equal to',
  'is before',
  'is on or before',
  'is after',
  'is on or after',
  'is between',
  'is not between',
  'contains',
  'does not contain',
  'starts with',
  'ends with',
  'is one of',
  'is not one of',
  'is empty',
  'is not empty',
  'is null',
  'is not null',
  'exists',
  'does not exist',
];

const BY_TYPE = new Map(FILTER_OPERATORS.types.map((t) => [t.type, t.operators]));
const ARITY = new Map(FILTER_OPERATORS.operators.map((o) => [o.name, o.values]));

function rank(operator: string): number {
  const i = DISPLAY_ORDER.indexOf(operator);
  return i >= 0 ? i : DISPLAY_ORDER.length + FILTER_OPERATORS.operators.findIndex((o) => o.name === operator);
}

/** The operators that apply to a property of this type, in the order the picker shows them. */
export function operatorsFor(type: string | TypeSpec): string[] {
  const allowed = BY_TYPE.get(typeKey(type)) ?? BY_TYPE.get('json') ?? [];
  return [...allowed].sort((a, b) => rank(a) - rank(b));
}

export type Arity = 'none' | 'one' | 'two' | 'many';

export function arityOf(operator: string): Arity {
  return ARITY.get(operator) ?? 'one';
}

/** What a value input looks like. */
export type InputKind = 'text' | 'integer' | 'number' | 'decimal' | 'datetime' | 'date' | 'time' | 'uuid' | 'boolean';

/** The kind of input for the values of a condition on a property of this type (an array's element type
 *  for `contains`). */
export function inputKindFor(type: string | TypeSpec): InputKind {
  let spec = typeof type === 'string' ? parseType(type) : type;
  if (spec.kind === 'array') spec = spec.element ?? { kind: 'string' };
  switch (spec.kind) {
    case 'int':
      return 'integer';
    case 'float':
      return 'number';
    case 'decimal':
      return 'decimal';
    case 'datetime':
      return 'datetime';
    case 'date':
      return 'date';
    case 'time':
      return 'time';
    case 'uuid':
      return 'uuid';
    case 'boolean':
      return 'boolean';
    default:
      return 'text';
  }
}

export function isGroup(c: Condition | FilterGroup): c is FilterGroup {
  return (c as FilterGroup).conditions !== undefined && (c as FilterGroup).logical !== undefined;
}

export function emptyFilter(): FilterGroup {
  return { logical: 'and', conditions: [] };
}

function sizeValues(values: unknown[] | null | undefined, arity: Arity): unknown[] | undefined {
  const v = values ?? [];
  switch (arity) {
    case 'none':
      return undefined;
    case 'one':
      return [v.length ? v[0] : ''];
    case 'two':
      return [v.length > 0 ? v[0] : '', v.length > 1 ? v[1] : ''];
    case 'many':
      return v.filter((x) => x !== '' && x !== null && x !== undefined);
  }
}

/** A new condition on `property`, with the first operator that fits and empty values. */
export function newCondition(property: PropertyPath): Condition {
  const op = operatorsFor(property.type)[0];
  const c: Condition = { property: property.path, operator: op };
  const values = sizeValues([], arityOf(op));
  if (values) c.values = values;
  return c;
}

/** The condition after picking another operator: values are kept where the arity allows. */
export function changeOperator(cond: Condition, operator: string): Condition {
  const next: Condition = { property: cond.property, operator };
  const values = sizeValues(cond.values, arityOf(operator));
  if (values) next.values = values;
  return next;
}

/** The condition after picking another property: the operator is kept if it still fits, and values
 *  are kept only when the type's input is the same. */
export function changeProperty(cond: Condition, from: PropertyPath | undefined, to: PropertyPath): Condition {
  const ops = operatorsFor(to.type);
  const operator = ops.includes(cond.operator) ? cond.operator : ops[0];
  const sameInput = from !== undefined && inputKindFor(from.type) === inputKindFor(to.type);
  const next: Condition = { property: to.path, operator };
  const values = sizeValues(sameInput ? cond.values : [], arityOf(operator));
  if (values) next.values = values;
  return next;
}

// Values --------------------------------------------------------------------------------------------

/** Turns what was typed into the JSON value the API expects for this input kind. Text that is not a
 *  valid number is kept as typed, so that the server names the problem. */
export function parseInput(raw: string, kind: InputKind): unknown {
  const text = raw.trim();
  switch (kind) {
    case 'integer':
    case 'number': {
      if (text === '') return '';
      const n = Number(text);
      return Number.isFinite(n) && /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text) ? n : raw;
    }
    case 'decimal':
      return text;
    case 'boolean':
      return text === 'true' ? true : text === 'false' ? false : '';
    case 'datetime':
      return fromDatetimeInput(text);
    case 'time':
      return text.length === 5 ? `${text}:00` : text;
    default:
      return raw;
  }
}

/** The text an input shows for a stored value. */
export function inputText(value: unknown, kind: InputKind): string {
  if (value === null || value === undefined) return '';
  if (kind === 'datetime' && typeof value === 'string') return toDatetimeInput(value);
  return typeof value === 'string' ? value : JSON.stringify(value);
}

/** `2024-05-13T15:30` (a datetime-local input, read as UTC) → `2024-05-13T15:30:00Z`. */
export function fromDatetimeInput(text: string): string {
  if (!text) return '';
  const m = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2})(:\d{2}(\.\d+)?)?$/.exec(text);
  if (!m) return text;
  return `${m[1]}T${m[2]}${m[3] ?? ':00'}Z`;
}

/** `2024-05-13T15:30:00Z` → `2024-05-13T15:30:00` for a datetime-local input (in UTC). */
export function toDatetimeInput(value: string): string {
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) return value.replace(/Z$/, '');
  return d.toISOString().slice(0, 19);
}

function isBlank(v: unknown): boolean {
  return v === '' || v === null || v === undefined;
}

/** Problems the UI can see before asking the server (missing or malformed values). */
export function conditionProblems(cond: Condition, property: PropertyPath | undefined): string[] {
  if (!cond.property) return ['choose a property'];
  if (!property) return [`\`${cond.property}\` is not a property of the Customer Model`];
  if (!operatorsFor(property.type).includes(cond.operator)) {
    return [`“${cond.operator}” does not apply to ${property.type} properties`];
  }
  const arity = arityOf(cond.operator);
  const values = cond.values ?? [];
  const kind = inputKindFor(property.type);
  const out: string[] = [];
  if (arity === 'one' && isBlank(values[0])) out.push('enter a value');
  if (arity === 'two' && (isBlank(values[0]) || isBlank(values[1]))) out.push('enter both bounds');
  if (arity === 'many' && values.length === 0) out.push('add at least one value');
  if (kind === 'integer' || kind === 'number') {
    for (const v of values) {
      if (!isBlank(v) && typeof v !== 'number') out.push(`“${String(v)}” is not a number`);
      else if (kind === 'integer' && typeof v === 'number' && !Number.isInteger(v)) out.push(`${v} is not a whole number`);
    }
  }
  if (kind === 'decimal') {
    for (const v of values) if (!isBlank(v) && !/^[-+]?\d+(\.\d+)?$/.test(String(v))) out.push(`“${String(v)}” is not a decimal number`);
  }
  return out;
}

/** Every local problem of a filter, keyed by the API's field paths (`filter.conditions[0].values`). */
export function filterProblems(filter: FilterGroup | null, paths: PropertyPath[], prefix = 'filter'): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  if (!filter) return out;
  filter.conditions.forEach((c, i) => {
    const p = `${prefix}.conditions[${i}]`;
    if (isGroup(c)) {
      Object.assign(out, filterProblems(c, paths, p));
      if (c.conditions.length === 0) out[p] = ['the group is empty: add a condition or remove it'];
    } else {
      const problems = conditionProblems(c, findProperty(paths, c.property));
      if (problems.length) out[p] = problems;
    }
  });
  return out;
}

/** The filter to send: `null` when it has no conditions, empty groups dropped. */
export function normalizeFilter(filter: FilterGroup | null): FilterGroup | null {
  if (!filter) return null;
  const clean = (g: FilterGroup): FilterGroup => ({
    logical: g.logical,
    conditions: g.conditions
      .map((c) => (isGroup(c) ? clean(c) : c))
      .filter((c) => !isGroup(c) || c.conditions.length > 0),
  });
  const g = clean(filter);
  return g.conditions.length ? g : null;
}

// Summary -------------------------------------------------------------------------------------------

export function formatValue(v: unknown): string {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'string') return v;
  return JSON.stringify(v);
}

export function summarizeCondition(c: Condition): string {
  const values = c.values ?? [];
  const head = `${c.property} ${c.operator}`;
  switch (arityOf(c.operator)) {
    case 'none':
      return head;
    case 'one':
      return `${head} ${formatValue(values[0])}`;
    case 'two':
      return `${head} ${formatValue(values[0])} and ${formatValue(values[1])}`;
    case 'many':
      return `${head} ${values.map(formatValue).join(', ')}`;
  }
}

/** A readable one-line summary: `country is one of IT, FR and (email is not empty)`; "All profiles"
 *  when there is no condition. */
export function summarizeFilter(filter: FilterGroup | null | undefined): string {
  const norm = normalizeFilter(filter ?? null);
  if (!norm) return 'All profiles';
  const group = (g: FilterGroup, nested: boolean): string => {
    const parts = g.conditions.map((c) => (isGroup(c) ? group(c, true) : summarizeCondition(c)));
    const text = parts.join(` ${g.logical} `);
    return nested ? `(${text})` : text;
  };
  return group(norm, false);
}

/** Counts the conditions of a filter, groups included. */
export function countConditions(filter: FilterGroup | null | undefined): number {
  if (!filter) return 0;
  return filter.conditions.reduce((n, c) => n + (isGroup(c) ? countConditions(c) : 1), 0);
}
