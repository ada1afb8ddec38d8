// The filter builder: conditions on Customer Model properties combined in and/or groups that nest.
// Operators and value inputs follow the property's type; errors (the server's 422 fields or local
// checks, keyed like `filter.conditions[0].values`) appear under the condition they name.

import { useEffect, useState } from 'preact/hooks';
import { api, errorMessage, type Condition, type FieldErrors, type FilterGroup } from '../api';
import { useDebounced } from '../hooks';
import { formatNumber } from '../lib/util';
import {
  arityOf,
  changeOperator,
  changeProperty,
  emptyFilter,
  filterProblems,
  inputKindFor,
  normalizeFilter,
  inputText,
  isGroup,
  newCondition,
  operatorsFor,
  parseInput,
  type InputKind,
} from '../lib/filter';
import { findProperty, type PropertyPath } from '../lib/schema';
import { errorsAt, errorsUnder } from '../lib/util';
import { FieldErrorsText } from './ui';

interface Props {
  filter: FilterGroup | null;
  onChange: (f: FilterGroup | null) => void;
  properties: PropertyPath[];
  errors?: FieldErrors;
  /** The API path of the filter (`filter`). */
  path?: string;
  /** Show how many profiles the filter matches while it is edited. */
  count?: boolean;
}

/** What the match counter says: "matches 1,234 of 10,000 profiles", or why it has no number. */
export function matchText(state: { matching: number | null; total: number } | null, incomplete: boolean): string {
  if (incomplete) return 'Complete the conditions to count the matching profiles.';
  if (!state) return 'Counting the matching profiles…';
  if (state.matching === null) return `No conditions: all ${formatNumber(state.total)} profiles.`;
  return `Matches ${formatNumber(state.matching)} of ${formatNumber(state.total)} profiles.`;
}

/** The number of profiles `filter` matches, asked of the store (which counts with the filter pushed down)
 *  once the filter stopped changing for a moment. */
export function MatchCount({ filter, incomplete }: { filter: FilterGroup | null; incomplete: boolean }) {
  const key = incomplete ? null : JSON.stringify(filter);
  const settled = useDebounced(key, 400);
  const [state, setState] = useState<{ key: string | null; matching: number | null; total: number } | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    if (incomplete || settled !== key) return;
    let live = true;
    api.listProfiles({ filter: filter && filter.conditions.length ? filter : null, limit: 1 }).then(
      (r) => {
        if (!live) return;
        setError(null);
        setState({ key: settled, matching: r.matching ?? null, total: r.total });
      },
      (e) => live && setError(errorMessage(e)),
    );
    return () => {
      live = false;
    };
  }, [settled]);
  const current = state && state.key === key ? state : null;
  return (
    <p class="muted small match-count" aria-live="polite" data-testid="match-count">
      {error ? `The profiles could not be counted: ${error}` : matchText(current, incomplete)}
    </p>
  );
}

export function FilterBuilder(props: Props) {
  const { filter, properties, count } = props;
  if (!count) return <FilterEditor {...props} />;
  const normalized = normalizeFilter(filter);
  const incomplete = Object.keys(filterProblems(normalized, properties)).length > 0;
  return (
    <>
      <FilterEditor {...props} />
      <MatchCount filter={normalized} incomplete={incomplete} />
    </>
  );
}

function FilterEditor({ filter, onChange, properties, errors, path = 'filter' }: Props) {
  const root = filter ?? emptyFilter();
  const rootErrors = errorsAt(errors, path);
  if (root.conditions.length === 0) {
    return (
      <div class="filter-builder">
        <p class="muted">No conditions: every profile is included.</p>
        <FieldErrorsText errors={rootErrors} />
        <div class="row gap-s">
          <button type="button" class="button" disabled={!properties.length} onClick={() => onChange({ logical: 'and', conditions: [newCondition(properties[0])] })}>
            + Add condition
          </button>
        </div>
      </div>
    );
  }
  return (
    <div class="filter-builder">
      <FieldErrorsText errors={rootErrors} />
      <GroupEditor
        group={root}
        onChange={(g) => onChange(g.conditions.length ? g : null)}
        properties={properties}
        errors={errors}
        path={path}
        label=""
        depth={0}
      />
    </div>
  );
}

interface GroupProps {
  group: FilterGroup;
  onChange: (g: FilterGroup) => void;
  onRemove?: () => void;
  properties: PropertyPath[];
  errors?: FieldErrors;
  path: string;
  /** `2.1` for the first condition of the second item's group; '' for the root. */
  label: string;
  depth: number;
}

function GroupEditor({ group, onChange, onRemove, properties, errors, path, label, depth }: GroupProps) {
  const setAt = (i: number, c: Condition | FilterGroup) => onChange({ ...group, conditions: group.conditions.map((x, j) => (j === i ? c : x)) });
  const removeAt = (i: number) => onChange({ ...group, conditions: group.conditions.filter((_, j) => j !== i) });
  const add = (c: Condition | FilterGroup) => onChange({ ...group, conditions: [...group.conditions, c] });
  const groupName = label ? `group ${label}` : 'the filter';
  const other = group.logical === 'and' ? 'or' : 'and';
  return (
    <div class={depth === 0 ? 'filter-group root' : 'filter-group nested'} role="group" aria-label={label ? `Condition group ${label}` : 'Filter conditions'}>
      <div class="filter-group-head">
        <label class="inline-label">
          <span>Match</span>
          <select
            aria-label={`How the conditions of ${groupName} combine`}
            value={group.logical}
            onChange={(e) => onChange({ ...group, logical: (e.currentTarget as HTMLSelectElement).value as 'and' | 'or' })}
          >
            <option value="and">all conditions (and)</option>
            <option value="or">any condition (or)</option>
          </select>
        </label>
        {onRemove && (
          <button type="button" class="button small ghost" onClick={onRemove} aria-label={`Remove ${groupName}`}>
            Remove group
          </button>
        )}
      </div>
      <FieldErrorsText errors={[...errorsAt(errors, `${path}.logical`), ...errorsAt(errors, `${path}.conditions`)]} />
      <ol class="filter-conditions">
        {group.conditions.map((c, i) => {
          const cpath = `${path}.conditions[${i}]`;
          const clabel = label ? `${label}.${i + 1}` : `${i + 1}`;
          return (
            <li key={i} class="filter-item">
              {i > 0 && <span class="logical-word" aria-hidden="true">{group.logical}</span>}
              {isGroup(c) ? (
                <>
                  <GroupEditor
                    group={c}
                    onChange={(g) => setAt(i, g)}
                    onRemove={() => removeAt(i)}
                    properties={properties}
                    errors={errors}
                    path={cpath}
                    label={clabel}
                    depth={depth + 1}
                  />
                  <FieldErrorsText errors={errorsAt(errors, cpath)} />
                </>
              ) : (
                <ConditionEditor cond={c} onChange={(x) => setAt(i, x)} onRemove={() => removeAt(i)} properties={properties} errors={errorsUnder(errors, cpath)} label={clabel} />
              )}
            </li>
          );
        })}
      </ol>
      <div class="row gap-s filter-actions">
        <button type="button" class="button small" onClick={() => add(newCondition(properties[0]))} disabled={!properties.length}>
          + Add condition
        </button>
        {depth < 4 && (
          <button
            type="button"
            class="button small"
            onClick={() => add({ logical: other, conditions: [newCondition(properties[0])] })}
            disabled={!properties.length}
            title={`A nested group whose conditions combine with “${other}”`}
          >
            + Add group
          </button>
        )}
      </div>
    </div>
  );
}

interface ConditionProps {
  cond: Condition;
  onChange: (c: Condition) => void;
  onRemove: () => void;
  properties: PropertyPath[];
  errors: string[];
  label: string;
}

function ConditionEditor({ cond, onChange, onRemove, properties, errors, label }: ConditionProps) {
  const prop = findProperty(properties, cond.property);
  const ops = prop ? operatorsFor(prop.type) : [cond.operator];
  const kind = prop ? inputKindFor(prop.type) : 'text';
  const arity = arityOf(cond.operator);
  const values = cond.values ?? [];
  const setValue = (i: number, raw: string) => {
    const next = [...values];
    next[i] = parseInput(raw, kind);
    onChange({ ...cond, values: next });
  };
  const builtin = properties.filter((p) => p.builtin);
  const model = properties.filter((p) => !p.builtin);
  return (
    <div class={errors.length ? 'condition has-error' : 'condition'}>
      <div class="condition-row">
        <select
          class="condition-property"
          aria-label={`Property of condition ${label}`}
          value={cond.property}
          onChange={(e) => {
            const to = findProperty(properties, (e.currentTarget as HTMLSelectElement).value);
            if (to) onChange(changeProperty(cond, prop, to));
          }}
        >
          {!prop && <option value={cond.property}>{cond.property || 'Choose a property'} (unknown)</option>}
          <optgroup label="Every profile">
            {builtin.map((p) => (
              <option key={p.path} value={p.path}>
                {p.path} — {p.type}
              </option>
            ))}
          </optgroup>
          {model.length > 0 && (
            <optgroup label="Customer Model">
              {model.map((p) => (
                <option key={p.path} value={p.path}>
                  {p.path} — {p.type}
                </option>
              ))}
            </optgroup>
          )}
        </select>
        <select
          class="condition-operator"
          aria-label={`Operator of condition ${label}`}
          value={cond.operator}
          onChange={(e) => onChange(changeOperator(cond, (e.currentTarget as HTMLSelectElement).value))}
        >
          {!ops.includes(cond.operator) && <option value={cond.operator}>{cond.operator} (does not fit)</option>}
          {ops.map((o) => (
            <option key={o} value={o}>
              {o}
            </option>
          ))}
        </select>
        <div class="condition-values">
          {arity === 'one' && <ValueInput kind={kind} value={values[0]} onInput={(v) => setValue(0, v)} label={`Value of condition ${label}`} />}
          {arity === 'two' && (
            <>
              <ValueInput kind={kind} value={values[0]} onInput={(v) => setValue(0, v)} label={`Lower bound of condition ${label}`} />
              <span class="muted">and</span>
              <ValueInput kind={kind} value={values[1]} onInput={(v) => setValue(1, v)} label={`Upper bound of condition ${label}`} />
            </>
          )}
          {arity === 'many' && <ChipsInput kind={kind} values={values} onChange={(v) => onChange({ ...cond, values: v })} label={`Values of condition ${label}`} />}
        </div>
        <button type="button" class="icon-button" aria-label={`Remove condition ${label}`} title="Remove condition" onClick={onRemove}>
          ×
        </button>
      </div>
      <FieldErrorsText errors={errors} />
    </div>
  );
}

interface InputAttrs {
  type: 'text' | 'number' | 'datetime-local' | 'date' | 'time';
  step?: number | string;
  inputMode?: 'numeric' | 'decimal';
  placeholder?: string;
  spellcheck?: boolean;
}

function inputAttrs(kind: InputKind): InputAttrs {
  switch (kind) {
    case 'integer':
      return { type: 'number', step: 1, inputMode: 'numeric' };
    case 'number':
      return { type: 'number', step: 'any', inputMode: 'decimal' };
    case 'decimal':
      return { type: 'text', inputMode: 'decimal', placeholder: '0.00' };
    case 'datetime':
      return { type: 'datetime-local', step: 1 };
    case 'date':
      return { type: 'date' };
    case 'time':
      return { type: 'time', step: 1 };
    case 'uuid':
      return { type: 'text', placeholder: '00000000-0000-0000-0000-000000000000', spellcheck: false };
    default:
      return { type: 'text' };
  }
}

function ValueInput({ kind, value, onInput, label }: { kind: InputKind; value: unknown; onInput: (raw: string) => void; label: string }) {
  if (kind === 'boolean') {
    return (
      <span class="value-input">
        <select aria-label={label} value={typeof value === 'boolean' ? String(value) : ''} onChange={(e) => onInput((e.currentTarget as HTMLSelectElement).value)}>
          <option value="">Choose…</option>
          <option value="true">true</option>
          <option value="false">false</option>
        </select>
      </span>
    );
  }
  const attrs = inputAttrs(kind);
  return (
    <span class="value-input">
      <input
        class="input"
        aria-label={kind === 'datetime' ? `${label} (UTC)` : label}
        value={inputText(value, kind)}
        onInput={(e) => onInput((e.currentTarget as HTMLInputElement).value)}
        {...attrs}
        type={attrs.type as 'text'}
      />
      {kind === 'datetime' && <span class="suffix">UTC</span>}
    </span>
  );
}

/** Several values as chips: Enter or comma adds the typed value, Backspace on an empty input removes the
 *  last chip. */
export function ChipsInput({ kind, values, onChange, label }: { kind: InputKind; values: unknown[]; onChange: (v: unknown[]) => void; label: string }) {
  const [text, setText] = useState('');
  const attrs = inputAttrs(kind);
  const commit = () => {
    const parts = kind === 'text' || kind === 'uuid' || kind === 'decimal' || kind === 'integer' || kind === 'number' ? text.split(',') : [text];
    const add = parts.map((p) => p.trim()).filter(Boolean).map((p) => parseInput(p, kind));
    if (add.length) onChange([...values, ...add]);
    setText('');
  };
  return (
    <div class="chips" role="group" aria-label={label}>
      {values.map((v, i) => (
        <span class="chip" key={i}>
          {inputText(v, kind)}
          <button type="button" class="chip-remove" aria-label={`Remove ${inputText(v, kind)}`} onClick={() => onChange(values.filter((_, j) => j !== i))}>
            ×
          </button>
        </span>
      ))}
      <input
        class="chip-input"
        aria-label={`Add a value to ${label.charAt(0).toLowerCase()}${label.slice(1)}`}
        placeholder={values.length ? 'Add…' : 'Type a value, press Enter'}
        value={text}
        {...attrs}
        type={(attrs.type === 'number' ? 'text' : attrs.type) as 'text'}
        onInput={(e) => setText((e.currentTarget as HTMLInputElement).value)}
        onKeyDown={(e) => {
          if (e.key === 'Enter' || e.key === ',') {
            e.preventDefault();
            commit();
          } else if (e.key === 'Backspace' && text === '' && values.length) {
            onChange(values.slice(0, -1));
          }
        }}
        onBlur={commit}
      />
    </div>
  );
}
