// The source pipeline editor's state and its translation to and from the API's body, kept apart from the
// page so that it is tested without a browser: a mapping is edited as rows (property path → expression)
// because its keys are typed by the user, unlike an export's columns which come from the table.

import type { Inspection, ProfileSchema, PropertyDef, Source, SourceInput, SourceSchedule } from '../api';

export type ReadKind = 'table' | 'query';
export type SourceTransformKind = 'mapping' | 'javascript' | 'python';

export interface MappingRow {
  path: string;
  expr: string;
}

export interface SourceState {
  connection: string;
  name: string;
  description: string;
  enabled: boolean;
  read: ReadKind;
  table: string;
  query: string;
  id_column: string;
  kind: SourceTransformKind;
  mapping: MappingRow[];
  javascript: string;
  python: string;
  mode: 'cursor' | 'full';
  cursorColumn: string;
  /** As typed: a duration (`5m`) for a timestamp cursor, a number for an integer one; empty for the default. */
  lookback: string;
  onMissing: 'keep' | 'delete';
  schedule: SourceSchedule;
}

export const JS_TEMPLATE = `// row: the source row, column by column (_id is the id column as text).
// Return an object keyed by Customer Model property path, or null to skip the row.
function transform(row) {
  return {};
}
`;

export const PY_TEMPLATE = `# row: the source row, column by column (_id is the id column as text).
# Return a dict keyed by Customer Model property path, or None to skip the row.
def transform(row):
    return {}
`;

export function newSourceState(connection = ''): SourceState {
  return {
    connection,
    name: '',
    description: '',
    enabled: true,
    read: 'table',
    table: '',
    query: '',
    id_column: '',
    kind: 'mapping',
    mapping: [],
    javascript: JS_TEMPLATE,
    python: PY_TEMPLATE,
    mode: 'cursor',
    cursorColumn: '',
    lookback: '',
    onMissing: 'keep',
    schedule: null,
  };
}

/** The editor's state of a saved source. */
export function sourceState(s: Source): SourceState {
  const base = newSourceState(s.connection);
  const t = s.transformation as Record<string, unknown>;
  const st: SourceState = {
    ...base,
    name: s.name,
    description: s.description ?? '',
    enabled: s.enabled ?? true,
    read: s.query ? 'query' : 'table',
    table: s.table ?? '',
    query: s.query ?? '',
    id_column: s.id_column,
    schedule: s.schedule ?? null,
  };
  if (t && typeof t.javascript === 'string') {
    st.kind = 'javascript';
    st.javascript = t.javascript;
  } else if (t && typeof t.python === 'string') {
    st.kind = 'python';
    st.python = t.python;
  } else if (t && t.mapping && typeof t.mapping === 'object') {
    st.mapping = Object.entries(t.mapping as Record<string, string>).map(([path, expr]) => ({ path, expr: String(expr) }));
  }
  if (s.changes.mode === 'cursor') {
    st.mode = 'cursor';
    st.cursorColumn = s.changes.column;
    st.lookback = s.changes.lookback === undefined || s.changes.lookback === null ? '' : String(s.changes.lookback);
  } else {
    st.mode = 'full';
    st.onMissing = s.changes.on_missing ?? 'keep';
  }
  return st;
}

/** The body of `POST /v1/sources` (and of a preview) for the editor's state. Empty mapping rows are left out. */
export function toSourceInput(s: SourceState): SourceInput {
  const transformation =
    s.kind === 'javascript'
      ? { javascript: s.javascript }
      : s.kind === 'python'
        ? { python: s.python }
        : { mapping: Object.fromEntries(s.mapping.filter((r) => r.path.trim() && r.expr.trim()).map((r) => [r.path.trim(), r.expr.trim()])) };
  const lookback = s.lookback.trim();
  const changes: SourceInput['changes'] =
    s.mode === 'cursor'
      ? { mode: 'cursor', column: s.cursorColumn.trim(), ...(lookback ? { lookback: /^\d+$/.test(lookback) ? Number(lookback) : lookback } : {}) }
      : { mode: 'full', on_missing: s.onMissing };
  return {
    connection: s.connection,
    name: s.name.trim(),
    description: s.description,
    enabled: s.enabled,
    table: s.read === 'table' ? s.table.trim() : null,
    query: s.read === 'query' ? s.query.trim() : null,
    id_column: s.id_column.trim(),
    transformation,
    changes,
    schedule: s.schedule,
  };
}

/** Problems the editor sees before asking the server, keyed like the server's 422 fields. */
export function localSourceProblems(s: SourceState): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  const add = (k: string, m: string) => (out[k] ??= []).push(m);
  if (!s.name.trim()) add('name', 'Enter a name.');
  if (!s.connection) add('connection', 'Choose the connection to read from.');
  if (s.read === 'table' && !s.table.trim()) add('table', 'Enter the table to read.');
  if (s.read === 'query' && !s.query.trim()) add('query', 'Write the SELECT query to read.');
  if (!s.id_column.trim()) add('id_column', 'Choose the column that identifies a profile.');
  if (s.mode === 'cursor' && !s.cursorColumn.trim()) add('changes.column', 'Choose the column that grows with every change.');
  const seen = new Set<string>();
  for (const r of s.mapping) {
    const p = r.path.trim();
    if (!p) continue;
    if (seen.has(p)) add(`transformation.mapping.${p}`, `The property ${p} is mapped twice.`);
    seen.add(p);
  }
  return out;
}

/** The mapping rows of an inspection's proposal, for the properties kept; existing rows with a path win. */
export function mappingFromProposal(current: MappingRow[], proposal: Record<string, unknown>, keep: (path: string) => boolean): MappingRow[] {
  const have = new Set(current.filter((r) => r.path.trim()).map((r) => r.path.trim()));
  const added = Object.entries(proposal)
    .filter(([p]) => !have.has(p) && keep(p))
    .map(([path, expr]) => ({ path, expr: String(expr) }));
  return [...current.filter((r) => r.path.trim() || r.expr.trim()), ...added];
}

/** A property of a model at a dotted path. */
export function propertyAt(props: PropertyDef[], path: string): PropertyDef | undefined {
  const [head, ...rest] = path.split('.');
  const p = props.find((x) => x.name === head);
  if (!p || rest.length === 0) return p;
  return propertyAt(p.properties ?? [], rest.join('.'));
}

/** The proposed model with the added properties the user left out removed and the types they changed
 *  applied; an object left without properties is removed with them. */
export function editedModel(inspection: Inspection, left: Set<string>, types: Record<string, string>): ProfileSchema {
  const walk = (props: PropertyDef[], prefix: string): PropertyDef[] => {
    const out: PropertyDef[] = [];
    for (const p of props) {
      const path = prefix ? `${prefix}.${p.name}` : p.name;
      if (left.has(path)) continue;
      const copy: PropertyDef = { ...p };
      if (p.properties) {
        copy.properties = walk(p.properties, path);
        if (copy.properties.length === 0 && inspection.added.includes(path)) continue;
      }
      if (types[path] && inspection.added.includes(path)) copy.type = types[path];
      out.push(copy);
    }
    return out;
  };
  return { ...inspection.model, properties: walk(inspection.model.properties, '') };
}

/** Whether `path` or a parent of it is among `left`. */
export function isLeftOut(left: Set<string>, path: string): boolean {
  const parts = path.split('.');
  for (let i = 1; i <= parts.length; i++) if (left.has(parts.slice(0, i).join('.'))) return true;
  return false;
}

/** What a source reads, in a few words. */
export function sourceReads(s: Pick<SourceInput, 'table' | 'query'>): string {
  if (s.table) return s.table;
  const q = (s.query ?? '').replace(/\s+/g, ' ').trim();
  return q.length > 60 ? `${q.slice(0, 57)}…` : q;
}

/** The change mode in a few words. */
export function changesLabel(c: SourceInput['changes']): string {
  if (c.mode === 'cursor') return `cursor on ${c.column}${c.lookback !== undefined && c.lookback !== null ? ` (lookback ${c.lookback})` : ''}`;
  return `full read, ${c.on_missing === 'delete' ? 'delete' : 'keep'} missing`;
}
