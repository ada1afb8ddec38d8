// A plain code editor: a textarea with a line-number gutter that marks the lines with errors. Tab
// indents; Escape then Tab leaves the editor (so the keyboard is never trapped).

import { useRef, useState } from 'preact/hooks';
import { classNames } from '../lib/util';

interface Props {
  id?: string;
  value: string;
  onInput: (v: string) => void;
  label: string;
  describedBy?: string;
  /** 1-based line numbers to mark. */
  errorLines?: number[];
  rows?: number;
}

/** Line numbers mentioned in an error message (`line 3`, `:3:14`, `<input>:3`). */
export function linesInMessage(message: string): number[] {
  const out = new Set<number>();
  for (const m of message.matchAll(/\blines?\s+(\d+)/gi)) out.add(Number(m[1]));
  for (const m of message.matchAll(/:(\d+):\d+/g)) out.add(Number(m[1]));
  return [...out].filter((n) => n > 0);
}

export function CodeEditor({ id, value, onInput, label, describedBy, errorLines = [], rows = 16 }: Props) {
  const gutterRef = useRef<HTMLDivElement>(null);
  const [escaped, setEscaped] = useState(false);
  const lines = Math.max(value.split('\n').length, rows);
  const bad = new Set(errorLines);

  const onKeyDown = (e: KeyboardEvent) => {
    const ta = e.currentTarget as HTMLTextAreaElement;
    if (e.key === 'Escape') {
      setEscaped(true);
      return;
    }
    if (e.key === 'Tab' && !escaped && !e.ctrlKey && !e.altKey && !e.metaKey) {
      e.preventDefault();
      const { selectionStart: s, selectionEnd: end } = ta;
      if (e.shiftKey) {
        const lineStart = value.lastIndexOf('\n', s - 1) + 1;
        const strip = value.slice(lineStart, lineStart + 4).match(/^ {1,4}/)?.[0].length ?? 0;
        if (strip) {
          onInput(value.slice(0, lineStart) + value.slice(lineStart + strip));
          window.requestAnimationFrame(() => ta.setSelectionRange(Math.max(lineStart, s - strip), Math.max(lineStart, end - strip)));
        }
        return;
      }
      const next = value.slice(0, s) + '    ' + value.slice(end);
      onInput(next);
      window.requestAnimationFrame(() => ta.setSelectionRange(s + 4, s + 4));
      return;
    }
    if (e.key === 'Enter' && !e.shiftKey) {
      // Keep the indentation of the current line.
      const s = ta.selectionStart;
      const lineStart = value.lastIndexOf('\n', s - 1) + 1;
      const indent = value.slice(lineStart).match(/^[ \t]*/)?.[0] ?? '';
      const before = value.slice(lineStart, s).trimEnd();
      const extra = before.endsWith('{') || before.endsWith(':') || before.endsWith('(') || before.endsWith('[') ? '    ' : '';
      if (indent || extra) {
        e.preventDefault();
        const ins = '\n' + indent + extra;
        onInput(value.slice(0, s) + ins + value.slice(ta.selectionEnd));
        window.requestAnimationFrame(() => ta.setSelectionRange(s + ins.length, s + ins.length));
      }
    }
    setEscaped(false);
  };

  return (
    <div class="code-editor">
      <div class="code-gutter" ref={gutterRef} aria-hidden="true">
        {Array.from({ length: lines }, (_, i) => (
          <div key={i} class={classNames('code-line-no', bad.has(i + 1) && 'bad')}>
            {i + 1}
          </div>
        ))}
      </div>
      <textarea
        id={id}
        class="code-text mono"
        aria-label={label}
        aria-describedby={describedBy}
        aria-invalid={errorLines.length > 0 || undefined}
        spellcheck={false}
        autocomplete="off"
        wrap="off"
        rows={rows}
        value={value}
        onInput={(e) => onInput((e.currentTarget as HTMLTextAreaElement).value)}
        onKeyDown={onKeyDown}
        onScroll={(e) => {
          if (gutterRef.current) gutterRef.current.scrollTop = (e.currentTarget as HTMLTextAreaElement).scrollTop;
        }}
      />
    </div>
  );
}
