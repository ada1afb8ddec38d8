// An expression input for a visual-mapping column that suggests Customer Model properties and mapping
// functions as you type (an ARIA combobox: arrows move, Enter or Tab accepts, Escape closes,
// Ctrl+Space opens the list).

import { useId, useMemo, useRef, useState } from 'preact/hooks';
import type { FunctionInfo } from '../api';
import type { PropertyPath } from '../lib/schema';
import { classNames } from '../lib/util';

export interface Suggestion {
  kind: 'property' | 'function';
  /** What is inserted. */
  insert: string;
  label: string;
  detail: string;
}

/** The identifier-like token that ends at `caret` (`addr.ci` in `lower(addr.ci|`). */
export function tokenAt(text: string, caret: number): { start: number; token: string } {
  let start = caret;
  while (start > 0 && /[A-Za-z0-9_.]/.test(text.charAt(start - 1))) start--;
  return { start, token: text.slice(start, caret) };
}

/** Whether the caret is inside a string literal. */
export function insideString(text: string, caret: number): boolean {
  let quote: string | null = null;
  for (let i = 0; i < caret; i++) {
    const ch = text.charAt(i);
    if (quote) {
      if (ch === '\\') i++;
      else if (ch === quote) quote = null;
    } else if (ch === '"' || ch === "'") quote = ch;
  }
  return quote !== null;
}

export function suggestionsFor(token: string, properties: PropertyPath[], functions: FunctionInfo[], limit = 8): Suggestion[] {
  const t = token.toLowerCase();
  const props: Suggestion[] = properties
    .filter((p) => p.path.toLowerCase().startsWith(t) || (t.length > 1 && p.path.toLowerCase().includes(t)))
    .map((p) => ({ kind: 'property', insert: p.path, label: p.path, detail: p.type }));
  const fns: Suggestion[] = t.includes('.')
    ? []
    : functions
        .filter((f) => f.name.toLowerCase().startsWith(t))
        .map((f) => ({ kind: 'function', insert: `${f.name}(`, label: f.signature || `${f.name}()`, detail: f.description }));
  const exact = (s: Suggestion) => (s.insert.toLowerCase().startsWith(t) ? 0 : 1);
  return [...props, ...fns].sort((a, b) => exact(a) - exact(b)).slice(0, limit);
}

interface Props {
  id?: string;
  value: string;
  onInput: (v: string) => void;
  properties: PropertyPath[];
  functions: FunctionInfo[];
  label: string;
  describedBy?: string;
  invalid?: boolean;
  placeholder?: string;
}

export function ExpressionInput({ id, value, onInput, properties, functions, label, describedBy, invalid, placeholder }: Props) {
  const [open, setOpen] = useState(false);
  const [active, setActive] = useState(0);
  const [caret, setCaret] = useState(0);
  const [forced, setForced] = useState(false);
  const inputRef = useRef<HTMLInputElement>(null);
  const listId = useId();

  const { start, token } = tokenAt(value, caret);
  const items = useMemo(() => {
    if (!open) return [];
    if (insideString(value, caret)) return [];
    if (!token && !forced) return [];
    return suggestionsFor(token, properties, functions);
  }, [open, token, forced, value, caret, properties, functions]);
  const shown = open && items.length > 0;

  const track = () => setCaret(inputRef.current?.selectionStart ?? value.length);

  const accept = (s: Suggestion) => {
    const end = caret;
    const next = value.slice(0, start) + s.insert + value.slice(end);
    onInput(next);
    const pos = start + s.insert.length;
    setOpen(false);
    setForced(false);
    window.requestAnimationFrame(() => {
      const el = inputRef.current;
      if (el) {
        el.focus();
        el.setSelectionRange(pos, pos);
        setCaret(pos);
      }
    });
  };

  const onKeyDown = (e: KeyboardEvent) => {
    if (e.key === ' ' && e.ctrlKey) {
      e.preventDefault();
      setForced(true);
      setOpen(true);
      setActive(0);
      return;
    }
    if (!shown) {
      if (e.key === 'ArrowDown') {
        setForced(true);
        setOpen(true);
        setActive(0);
        e.preventDefault();
      }
      return;
    }
    if (e.key === 'ArrowDown') {
      e.preventDefault();
      setActive((active + 1) % items.length);
    } else if (e.key === 'ArrowUp') {
      e.preventDefault();
      setActive((active - 1 + items.length) % items.length);
    } else if (e.key === 'Enter' || e.key === 'Tab') {
      e.preventDefault();
      accept(items[Math.min(active, items.length - 1)]);
    } else if (e.key === 'Escape') {
      e.preventDefault();
      e.stopPropagation();
      setOpen(false);
      setForced(false);
    }
  };

  return (
    <div class="combo">
      <input
        ref={inputRef}
        id={id}
        class={classNames('input', 'mono', invalid && 'invalid')}
        type="text"
        role="combobox"
        aria-label={label}
        aria-autocomplete="list"
        aria-expanded={shown}
        aria-controls={listId}
        aria-activedescendant={shown ? `${listId}-${active}` : undefined}
        aria-describedby={describedBy}
        aria-invalid={invalid || undefined}
        autocomplete="off"
        spellcheck={false}
        placeholder={placeholder}
        value={value}
        onInput={(e) => {
          onInput((e.currentTarget as HTMLInputElement).value);
          setCaret((e.currentTarget as HTMLInputElement).selectionStart ?? 0);
          setOpen(true);
          setForced(false);
          setActive(0);
        }}
        onKeyDown={onKeyDown}
        onKeyUp={(e) => {
          if (['ArrowLeft', 'ArrowRight', 'Home', 'End'].includes(e.key)) track();
        }}
        onClick={track}
        onBlur={() => window.setTimeout(() => setOpen(false), 120)}
      />
      <ul id={listId} role="listbox" aria-label="Suggested properties and functions" class={classNames('combo-list', !shown && 'hidden')}>
        {shown &&
          items.map((s, i) => (
            <li
              key={s.kind + s.insert}
              id={`${listId}-${i}`}
              role="option"
              aria-selected={i === active}
              class={classNames('combo-option', i === active && 'active')}
              onMouseDown={(e) => {
                e.preventDefault();
                accept(s);
              }}
              onMouseEnter={() => setActive(i)}
            >
              <span class={`combo-kind ${s.kind}`} aria-hidden="true">
                {s.kind === 'property' ? 'P' : 'ƒ'}
              </span>
              <span class="combo-label mono">{s.label}</span>
              <span class="combo-detail">{s.detail}</span>
            </li>
          ))}
      </ul>
    </div>
  );
}
