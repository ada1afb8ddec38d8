// The source pipeline editor: connection, a table (picked from the connection's tables) or a SELECT,
// Inspect (columns, sample rows and the Customer Model it proposes, applied only when the user says so),
// the id column, the mapping from source columns to model properties (or a script), how changes are
// found, the schedule, and a preview of what the first rows would write. Every error the API names is
// shown at its field.

import { useEffect, useId, useMemo, useState } from 'preact/hooks';
import { useAccess } from '../access';
import { api, ApiError, errorMessage, fieldErrors, type Destination, type FieldErrors, type FunctionInfo, type Inspection, type Schedule, type SourcePreview, type SourceSchedule, type TableEntry } from '../api';
import { CodeEditor, linesInMessage } from '../components/CodeEditor';
import { ExpressionInput } from '../components/ExpressionInput';
import { Alert, Badge, ErrorAlert, Field, FieldErrorsText, Loading, PageHeader, Spinner, Switch, useToast } from '../components/ui';
import { loadFunctions, loadSchema, setSchemaCache, useTitle } from '../hooks';
import { flattenSchema, type PropertyPath } from '../lib/schema';
import {
  editedModel,
  isLeftOut,
  localSourceProblems,
  mappingFromProposal,
  newSourceState,
  propertyAt,
  sourceState,
  toSourceInput,
  type SourceState,
} from '../lib/source';
import { classNames, countErrors, errorsAt, errorsUnder, INTERVALS, scheduleErrors, SOURCE_INTERVALS } from '../lib/util';
import { href, navigate } from '../router';
import { ScheduleField, TransformTabs } from './PipelineEditor';

/** A source's schedule picker: its short intervals, then the export pipelines' ones. */
const SOURCE_SCHEDULE_INTERVALS = [...SOURCE_INTERVALS, ...INTERVALS];

interface Loaded {
  state: SourceState;
  connections: Destination[];
  properties: PropertyPath[];
  functions: FunctionInfo[];
}

export function SourceEditorPage({ id }: { id?: string }) {
  const [loaded, setLoaded] = useState<Loaded | null>(null);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    let live = true;
    setLoaded(null);
    (async () => {
      const [source, connections, schema, functions] = await Promise.all([
        id ? api.getSource(id) : Promise.resolve(null),
        api.listDestinations(),
        loadSchema(true).catch(() => null),
        loadFunctions().catch(() => [] as FunctionInfo[]),
      ]);
      if (!live) return;
      const state = source ? sourceState(source) : newSourceState(connections.length === 1 ? connections[0].id : '');
      setLoaded({ state, connections, properties: flattenSchema(schema), functions });
    })().catch((e) => live && setError(e));
    return () => {
      live = false;
    };
  }, [id]);
  const title = id ? `Manage ${loaded?.state.name || 'source'}` : 'Add source';
  useTitle(title);
  return (
    <div class="page editor-page">
      <PageHeader
        crumbs={[{ label: 'Sources', href: href('sources') }, { label: id ? loaded?.state.name || 'Source' : 'Add source' }]}
        title={title}
        subtitle={
          id ? (
            <>
              Change what is read and how it becomes profile properties. <a href={href('sources', id, 'runs')}>Runs →</a>
            </>
          ) : (
            'A source pipeline reads a table or query of a connection into the profile store.'
          )
        }
      />
      <ErrorAlert error={error} />
      {!loaded && !error && <Loading />}
      {loaded && <Editor key={id ?? 'new'} id={id} loaded={loaded} />}
    </div>
  );
}

type InspectState = { busy: boolean; result?: Inspection; error?: string };

function Editor({ id, loaded }: { id?: string; loaded: Loaded }) {
  const access = useAccess();
  const toast = useToast();
  const [s, setS] = useState<SourceState>(loaded.state);
  const [errors, setErrors] = useState<FieldErrors>({});
  const [saveError, setSaveError] = useState<string | null>(null);
  const [saving, setSaving] = useState(false);
  const [properties, setProperties] = useState<PropertyPath[]>(loaded.properties);
  const [tables, setTables] = useState<TableEntry[] | null>(null);
  const [inspect, setInspect] = useState<InspectState>({ busy: false });
  const [leftOut, setLeftOut] = useState<Set<string>>(new Set());
  const [types, setTypes] = useState<Record<string, string>>({});
  const [applying, setApplying] = useState(false);
  const [preview, setPreview] = useState<{ busy: boolean; result?: SourcePreview; error?: string }>({ busy: false });
  const tableListId = useId();
  const propListId = useId();
  const update = (changes: Partial<SourceState>) => setS((old) => ({ ...old, ...changes }));
  const clear = (...prefixes: string[]) =>
    setErrors((old) => Object.fromEntries(Object.entries(old).filter(([k]) => !prefixes.some((p) => k === p || k.startsWith(p + '.')))));

  useEffect(() => {
    setTables(null);
    if (!s.connection) return;
    let live = true;
    api.listTables(s.connection).then(
      (r) => live && setTables(r.tables),
      () => live && setTables([]),
    );
    return () => {
      live = false;
    };
  }, [s.connection]);

  // A saved source is inspected at once, so that its columns are there to pick from.
  useEffect(() => {
    if (id && (s.table || s.query)) void runInspect();
  }, []);

  const columns = inspect.result?.columns ?? [];
  const columnPaths: PropertyPath[] = useMemo(() => columns.map((c) => ({ path: c.name, type: c.property_type ?? 'json', nullable: c.nullable })), [columns]);

  const runInspect = async () => {
    const problems = localSourceProblems(s);
    const need = Object.fromEntries(Object.entries(problems).filter(([k]) => k === 'connection' || k === 'table' || k === 'query'));
    if (Object.keys(need).length) {
      setErrors((old) => ({ ...old, ...need }));
      return;
    }
    setInspect({ busy: true });
    clear('connection', 'table', 'query', 'rows');
    try {
      const result = await api.inspectSource({
        connection: s.connection,
        ...(s.read === 'table' ? { table: s.table.trim() } : { query: s.query.trim() }),
        rows: 10,
        ...(s.id_column.trim() ? { id_column: s.id_column.trim() } : {}),
      });
      setInspect({ busy: false, result });
      setLeftOut(new Set());
      setTypes({});
      if (!s.id_column && result.id_column) update({ id_column: result.id_column });
    } catch (e) {
      const f = fieldErrors(e);
      if (e instanceof ApiError && e.code === 'TableNotFound') f.table = [...(f.table ?? []), e.message];
      setErrors((old) => ({ ...old, ...f }));
      setInspect({ busy: false, error: Object.keys(f).length ? undefined : errorMessage(e) });
    }
  };

  const applyModel = async () => {
    if (!inspect.result) return;
    setApplying(true);
    try {
      const saved = await api.putSchema(editedModel(inspect.result, leftOut, types));
      setSchemaCache(saved);
      setProperties(flattenSchema(saved));
      const kept = inspect.result.added.filter((p) => !isLeftOut(leftOut, p)).length;
      toast('success', `The Customer Model now has ${kept} new ${kept === 1 ? 'property' : 'properties'}.`);
    } catch (e) {
      toast('error', errorMessage(e));
    } finally {
      setApplying(false);
    }
  };

  const useProposedMapping = () => {
    if (!inspect.result) return;
    update({ kind: 'mapping', mapping: mappingFromProposal(s.mapping, inspect.result.mapping, (p) => !isLeftOut(leftOut, p)) });
  };

  const runPreview = async () => {
    setPreview({ busy: true });
    try {
      const result = await api.previewSource(toSourceInput(s), 10);
      setPreview({ busy: false, result });
    } catch (e) {
      const f = fieldErrors(e);
      if (Object.keys(f).length) setErrors(f);
      setPreview({ busy: false, error: errorMessage(e) });
    }
  };

  const save = async (e: Event) => {
    e.preventDefault();
    setSaveError(null);
    const local = localSourceProblems(s);
    if (Object.keys(local).length) {
      setErrors(local);
      setSaveError(`Fix ${countErrors(local)} problem${countErrors(local) === 1 ? '' : 's'} before saving.`);
      return;
    }
    setSaving(true);
    try {
      const body = toSourceInput(s);
      const saved = id ? await api.replaceSource(id, body) : await api.createSource(body);
      toast('success', id ? `Source “${saved.name}” saved.` : `Source “${saved.name}” added.`);
      navigate(href('sources'));
    } catch (err) {
      const f = fieldErrors(err);
      if (err instanceof ApiError && err.code === 'NameTaken') f.name = [...(f.name ?? []), err.message];
      setErrors(f);
      const n = countErrors(f);
      setSaveError(n ? `The source was not saved: ${n} problem${n === 1 ? '' : 's'}, each shown at its field.` : errorMessage(err));
    } finally {
      setSaving(false);
    }
  };

  const mappingErrors = (path: string) => errorsAt(errors, `transformation.mapping.${path}`);
  const knownPaths = new Set(s.mapping.map((r) => r.path.trim()));
  // Errors at a path no field of the form shows (a field a newer server checks) are listed with the save alert.
  const shownAt = ['name', 'description', 'connection', 'table', 'query', 'id_column', 'transformation', 'changes', 'schedule'];
  const otherErrors = Object.entries(errors).filter(([k]) => !shownAt.some((p) => k === p || k.startsWith(p + '.')));
  const unplaced = Object.entries(errors).filter(([k]) => k.startsWith('transformation.mapping.') && !knownPaths.has(k.slice('transformation.mapping.'.length)));

  return (
    <form class="editor" onSubmit={save} noValidate>
      <section class="card section" aria-labelledby="src-name">
        <h2 id="src-name">Source</h2>
        <Field label="Name" required errors={errorsAt(errors, 'name')}>
          {(fid, d, inv) => (
            <input id={fid} name="name" class="input" value={s.name} aria-describedby={d} aria-invalid={inv || undefined} aria-required onInput={(e) => (update({ name: (e.currentTarget as HTMLInputElement).value }), clear('name'))} />
          )}
        </Field>
        <Field label="Description" errors={errorsAt(errors, 'description')}>
          {(fid, d) => <input id={fid} name="description" class="input" value={s.description} aria-describedby={d} onInput={(e) => update({ description: (e.currentTarget as HTMLInputElement).value })} />}
        </Field>
        <div class="row gap-s">
          <Switch checked={s.enabled} onChange={(v) => update({ enabled: v })} label="Enabled" />
          <span class="small">{s.enabled ? 'Enabled: runs on its schedule and with Run now' : 'Disabled: never runs'}</span>
        </div>
      </section>

      <section class="card section" aria-labelledby="src-read">
        <h2 id="src-read">What to read</h2>
        <Field
          label="Connection"
          required
          errors={errorsAt(errors, 'connection')}
          help={
            <>
              The same connections as destinations: one entered once serves both ways. <a href={href('destinations', 'new')}>Add a connection</a>
            </>
          }
        >
          {(fid, d, inv) => (
            <select id={fid} name="connection" class="input" value={s.connection} aria-describedby={d} aria-invalid={inv || undefined} onChange={(e) => (update({ connection: (e.currentTarget as HTMLSelectElement).value }), clear('connection'))}>
              <option value="">Choose a connection…</option>
              {loaded.connections.map((c) => (
                <option key={c.id} value={c.id}>
                  {c.name} ({c.type})
                </option>
              ))}
            </select>
          )}
        </Field>
        <fieldset class="fieldset">
          <legend>Read</legend>
          <label class="radio">
            <input type="radio" name="read" value="table" checked={s.read === 'table'} onChange={() => update({ read: 'table' })} /> A table
          </label>
          <label class="radio">
            <input type="radio" name="read" value="query" checked={s.read === 'query'} onChange={() => update({ read: 'query' })} /> A SELECT query
          </label>
        </fieldset>
        {s.read === 'table' ? (
          <Field label="Table" required errors={errorsAt(errors, 'table')} help={tables && tables.length ? `${tables.length} ${tables.length === 1 ? 'table' : 'tables'} to pick from; start typing to search.` : undefined}>
            {(fid, d, inv) => (
              <input
                id={fid}
                name="table"
                class="input mono"
                value={s.table}
                list={tables && tables.length ? tableListId : undefined}
                autoComplete="off"
                aria-describedby={d}
                aria-invalid={inv || undefined}
                onInput={(e) => (update({ table: (e.currentTarget as HTMLInputElement).value }), clear('table'))}
              />
            )}
          </Field>
        ) : (
          <Field label="Query" required errors={errorsAt(errors, 'query')} help="One SELECT (or WITH … SELECT); it runs read-only and stops after 30 s.">
            {(fid, d, inv) => (
              <textarea id={fid} name="query" class="input mono" rows={5} value={s.query} aria-describedby={d} aria-invalid={inv || undefined} onInput={(e) => (update({ query: (e.currentTarget as HTMLTextAreaElement).value }), clear('query'))} />
            )}
          </Field>
        )}
        {tables && tables.length > 0 && (
          <datalist id={tableListId}>
            {tables.map((t) => (
              <option key={`${t.schema ?? ''}.${t.name}`} value={t.name}>
                {t.schema ? `${t.schema}.${t.name}` : t.name}
              </option>
            ))}
          </datalist>
        )}
        <div class="row gap-s">
          <button type="button" class="button" name="inspect" onClick={() => void runInspect()} disabled={inspect.busy || !access.can('edit')} title={access.whyNot('edit') ?? 'See the columns, sample rows and the Customer Model they propose'}>
            {inspect.busy ? (
              <>
                <Spinner label="Inspecting" /> Inspecting…
              </>
            ) : (
              'Inspect'
            )}
          </button>
        </div>
        <div aria-live="polite">
          {inspect.error && <Alert title="The source could not be inspected">{inspect.error}</Alert>}
          {inspect.result && <InspectionView result={inspect.result} />}
        </div>
      </section>

      {inspect.result && (
        <section class="card section" aria-labelledby="src-model">
          <h2 id="src-model">Customer Model</h2>
          <ProposalView result={inspect.result} leftOut={leftOut} setLeftOut={setLeftOut} types={types} setTypes={setTypes} />
          <div class="row gap-s">
            <button type="button" class="button primary" name="apply-model" onClick={() => void applyModel()} disabled={applying || inspect.result.added.length === 0 || !access.can('edit')}>
              {applying ? 'Applying…' : 'Apply to the Customer Model'}
            </button>
            <button type="button" class="button" name="use-mapping" onClick={useProposedMapping}>
              Use the proposed mapping
            </button>
          </div>
        </section>
      )}

      <section class="card section" aria-labelledby="src-id">
        <h2 id="src-id">Profile id</h2>
        <Field label="Id column" required errors={errorsAt(errors, 'id_column')} help="Its value becomes the profile's _id: a string, integer or UUID column. A duplicate within one read is reported; the first row wins.">
          {(fid, d, inv) =>
            columns.length ? (
              <select id={fid} name="id_column" class="input" value={s.id_column} aria-describedby={d} aria-invalid={inv || undefined} onChange={(e) => (update({ id_column: (e.currentTarget as HTMLSelectElement).value }), clear('id_column'))}>
                <option value="">Choose a column…</option>
                {!columns.some((c) => c.name === s.id_column) && s.id_column && <option value={s.id_column}>{s.id_column}</option>}
                {columns.map((c) => (
                  <option key={c.name} value={c.name}>
                    {c.name} ({c.type})
                  </option>
                ))}
              </select>
            ) : (
              <input id={fid} name="id_column" class="input mono" value={s.id_column} placeholder="Inspect to pick from the columns" aria-describedby={d} aria-invalid={inv || undefined} onInput={(e) => (update({ id_column: (e.currentTarget as HTMLInputElement).value }), clear('id_column'))} />
            )
          }
        </Field>
      </section>

      <section class="card section" aria-labelledby="src-transform">
        <h2 id="src-transform">Transformation</h2>
        <p class="section-desc">From source columns to Customer Model properties. Each source writes only the properties it maps; the others are kept.</p>
        <TransformTabs kind={s.kind} onChange={(k) => update({ kind: k })} />
        <div role="tabpanel" id={`panel-${s.kind}`} aria-labelledby={`tab-${s.kind}`}>
          {s.kind === 'mapping' ? (
            <div class="mapping">
              <FieldErrorsText errors={errorsAt(errors, 'transformation.mapping')} />
              <FieldErrorsText errors={errorsAt(errors, 'transformation')} />
              {s.mapping.length === 0 && (
                <p class="muted">{inspect.result ? 'Press “Use the proposed mapping” above, or add properties one by one.' : 'Inspect the source to propose a mapping, or add properties one by one.'}</p>
              )}
              <div class="mapping-table" role="table" aria-label="Visual mapping">
                <div class="mapping-row mapping-head" role="row">
                  <span role="columnheader">Property</span>
                  <span role="columnheader">Expression over source columns</span>
                </div>
                {s.mapping.map((r, i) => {
                  const errs = mappingErrors(r.path.trim());
                  return (
                    <div class={classNames('mapping-row', errs.length > 0 && 'has-error')} role="row" key={i}>
                      <div class="mapping-col" role="cell">
                        <input
                          class="input mono"
                          name={`map-path-${i}`}
                          list={propListId}
                          value={r.path}
                          aria-label={`Property of mapping row ${i + 1}`}
                          placeholder="address.city"
                          onInput={(e) => update({ mapping: s.mapping.map((x, j) => (j === i ? { ...x, path: (e.currentTarget as HTMLInputElement).value } : x)) })}
                        />
                      </div>
                      <div class="mapping-expr" role="cell">
                        <div class="row gap-s">
                          <div class="grow">
                            <ExpressionInput
                              id={`src-map-${i}`}
                              value={r.expr}
                              onInput={(v) => {
                                update({ mapping: s.mapping.map((x, j) => (j === i ? { ...x, expr: v } : x)) });
                                if (errs.length) clear(`transformation.mapping.${r.path.trim()}`);
                              }}
                              properties={columnPaths}
                              functions={loaded.functions}
                              label={`Expression for property ${r.path || i + 1}`}
                              invalid={errs.length > 0}
                              placeholder="column name or expression"
                            />
                          </div>
                          <button type="button" class="button small ghost" onClick={() => update({ mapping: s.mapping.filter((_, j) => j !== i) })} aria-label={`Remove mapping row ${i + 1}`}>
                            Remove
                          </button>
                        </div>
                        <FieldErrorsText errors={errs} />
                      </div>
                    </div>
                  );
                })}
              </div>
              <datalist id={propListId}>
                {properties
                  .filter((p) => !p.builtin)
                  .map((p) => (
                    <option key={p.path} value={p.path}>
                      {p.type}
                    </option>
                  ))}
              </datalist>
              {unplaced.map(([k, v]) => (
                <FieldErrorsText key={k} errors={v.map((m) => `${k.slice('transformation.mapping.'.length)}: ${m}`)} />
              ))}
              <button type="button" class="button small" onClick={() => update({ mapping: [...s.mapping, { path: '', expr: '' }] })}>
                Add a property
              </button>
            </div>
          ) : (
            <div class="script">
              <p class="help">
                Define <code>transform(row)</code> returning {s.kind === 'javascript' ? 'an object' : 'a dict'} keyed by property path, or {s.kind === 'javascript' ? <code>null</code> : <code>None</code>} to skip the row.
              </p>
              <CodeEditor
                id={`src-code-${s.kind}`}
                value={s.kind === 'javascript' ? s.javascript : s.python}
                onInput={(c) => update(s.kind === 'javascript' ? { javascript: c } : { python: c })}
                label={`${s.kind === 'javascript' ? 'JavaScript' : 'Python'} transformation`}
                errorLines={errorsUnder(errors, `transformation.${s.kind}`).flatMap(linesInMessage)}
              />
              <FieldErrorsText errors={errorsUnder(errors, `transformation.${s.kind}`)} />
            </div>
          )}
        </div>
        <div class="preview" aria-live="polite">
          <div class="row space-between">
            <h3>Preview</h3>
            <button type="button" class="button small" name="preview" onClick={() => void runPreview()} disabled={preview.busy || !access.can('edit')}>
              {preview.busy ? 'Running…' : 'Preview on the first rows'}
            </button>
          </div>
          {preview.error && <Alert title="Preview failed">{preview.error}</Alert>}
          {preview.result && <PreviewTable result={preview.result} />}
        </div>
      </section>

      <section class="card section" aria-labelledby="src-changes">
        <h2 id="src-changes">Changes and schedule</h2>
        <fieldset class="fieldset">
          <legend>How changes are found</legend>
          <label class="radio">
            <input type="radio" name="mode" value="cursor" checked={s.mode === 'cursor'} onChange={() => update({ mode: 'cursor' })} /> Cursor: read rows past a growing column
          </label>
          <label class="radio">
            <input type="radio" name="mode" value="full" checked={s.mode === 'full'} onChange={() => update({ mode: 'full' })} /> Full: read everything, write what changed
          </label>
        </fieldset>
        {s.mode === 'cursor' ? (
          <div class="row gap-s wrap">
            <Field label="Cursor column" required errors={errorsUnder(errors, 'changes.column')} help="Grows with every change: a timestamp such as updated_at, or an increasing id.">
              {(fid, d, inv) =>
                columns.length ? (
                  <select id={fid} name="cursor_column" class="input" value={s.cursorColumn} aria-describedby={d} aria-invalid={inv || undefined} onChange={(e) => (update({ cursorColumn: (e.currentTarget as HTMLSelectElement).value }), clear('changes.column'))}>
                    <option value="">Choose a column…</option>
                    {!columns.some((c) => c.name === s.cursorColumn) && s.cursorColumn && <option value={s.cursorColumn}>{s.cursorColumn}</option>}
                    {columns.map((c) => (
                      <option key={c.name} value={c.name}>
                        {c.name} ({c.type})
                      </option>
                    ))}
                  </select>
                ) : (
                  <input id={fid} name="cursor_column" class="input mono" value={s.cursorColumn} aria-describedby={d} aria-invalid={inv || undefined} onInput={(e) => update({ cursorColumn: (e.currentTarget as HTMLInputElement).value })} />
                )
              }
            </Field>
            <Field label="Lookback" errors={errorsUnder(errors, 'changes.lookback')} help="Read again this far behind the greatest value seen (10s for a timestamp, 10000 for an integer when left empty), so that a row whose transaction committed after a later one is not missed. Longer if writers hold transactions open longer.">
              {(fid, d, inv) => <input id={fid} name="lookback" class="input mono" value={s.lookback} placeholder="default" aria-describedby={d} aria-invalid={inv || undefined} onInput={(e) => update({ lookback: (e.currentTarget as HTMLInputElement).value })} />}
            </Field>
          </div>
        ) : (
          <Field label="When a row disappears from the source" errors={errorsUnder(errors, 'changes.on_missing')}>
            {(fid, d) => (
              <select id={fid} name="on_missing" class="input" value={s.onMissing} aria-describedby={d} onChange={(e) => update({ onMissing: (e.currentTarget as HTMLSelectElement).value as 'keep' | 'delete' })}>
                <option value="keep">Keep the profile</option>
                <option value="delete">Delete the profile (unless another source feeds it)</option>
              </select>
            )}
          </Field>
        )}
        <FieldErrorsText errors={errorsAt(errors, 'changes')} />
        <ScheduleField
          value={s.schedule as Schedule}
          onChange={(v) => (update({ schedule: v as SourceSchedule }), clear('schedule'))}
          errors={scheduleErrors(errors)}
          onChangeChoice={false}
          intervals={SOURCE_SCHEDULE_INTERVALS}
        />
      </section>

      {saveError && (
        <Alert title="Not saved">
          {saveError}
          {otherErrors.length > 0 && (
            <ul>
              {otherErrors.map(([k, v]) => (
                <li key={k}>
                  <span class="mono">{k}</span>: {v.join(' ')}
                </li>
              ))}
            </ul>
          )}
        </Alert>
      )}
      <div class="form-actions sticky-actions">
        <span class="spacer" />
        <a class="button ghost" href={href('sources')}>
          Cancel
        </a>
        <button type="submit" class="button primary" disabled={saving || !access.can('edit')} title={access.whyNot('edit') ?? undefined}>
          {saving ? 'Saving…' : id ? 'Save' : 'Add'}
        </button>
      </div>
    </form>
  );
}

function cellText(v: unknown): string {
  if (v === null || v === undefined) return 'NULL';
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

function InspectionView({ result }: { result: Inspection }) {
  return (
    <div class="inspection">
      <h3 class="subhead">Columns</h3>
      <div class="table-wrap">
        <table class="table" aria-label="Source columns">
          <thead>
            <tr>
              <th scope="col">Column</th>
              <th scope="col">Type</th>
              <th scope="col">Model type</th>
              <th scope="col">Nullable</th>
            </tr>
          </thead>
          <tbody>
            {result.columns.map((c) => (
              <tr key={c.name}>
                <td class="mono">
                  {c.name} {c.name === result.id_column && <Badge kind="success">id</Badge>}
                </td>
                <td class="mono small">{c.type}</td>
                <td class="mono small">{c.property_type ?? '—'}</td>
                <td>{c.nullable ? 'yes' : 'no'}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <h3 class="subhead">Sample rows ({result.rows.length})</h3>
      {result.rows.length === 0 ? (
        <p class="muted">The source has no rows yet.</p>
      ) : (
        <div class="table-wrap">
          <table class="table small" aria-label="Sample rows">
            <thead>
              <tr>
                {result.columns.map((c) => (
                  <th key={c.name} scope="col" class="mono">
                    {c.name}
                  </th>
                ))}
              </tr>
            </thead>
            <tbody>
              {result.rows.map((r, i) => (
                <tr key={i}>
                  {result.columns.map((c) => (
                    <td key={c.name} class="mono small">
                      {cellText(r[c.name])}
                    </td>
                  ))}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </div>
  );
}

function ProposalView({
  result,
  leftOut,
  setLeftOut,
  types,
  setTypes,
}: {
  result: Inspection;
  leftOut: Set<string>;
  setLeftOut: (s: Set<string>) => void;
  types: Record<string, string>;
  setTypes: (t: Record<string, string>) => void;
}) {
  return (
    <div class="proposal">
      {result.added.length === 0 ? (
        <p class="muted">The Customer Model already has a property for every column.</p>
      ) : (
        <>
          <p class="section-desc">
            Applying adds these {result.added.length} {result.added.length === 1 ? 'property' : 'properties'} (existing properties are never changed). Untick what you do not want, or change a type.
          </p>
          <ul class="proposal-list" aria-label="Properties the proposal adds">
            {result.added.map((p) => {
              const def = propertyAt(result.model.properties, p);
              const off = isLeftOut(leftOut, p);
              return (
                <li key={p} class="row gap-s">
                  <label class="row gap-s">
                    <input
                      type="checkbox"
                      checked={!leftOut.has(p)}
                      disabled={off && !leftOut.has(p)}
                      onChange={(e) => {
                        const n = new Set(leftOut);
                        if ((e.currentTarget as HTMLInputElement).checked) n.delete(p);
                        else n.add(p);
                        setLeftOut(n);
                      }}
                    />
                    <span class="mono">{p}</span>
                  </label>
                  <input class="input small mono" aria-label={`Type of ${p}`} value={types[p] ?? def?.type ?? ''} disabled={off || def?.type === 'object'} onInput={(e) => setTypes({ ...types, [p]: (e.currentTarget as HTMLInputElement).value })} />
                </li>
              );
            })}
          </ul>
        </>
      )}
      {result.issues.length > 0 && (
        <Alert kind="warning" title="To look at before applying">
          <ul>
            {result.issues.map((i, n) => (
              <li key={n}>
                <span class="mono">{i.column}</span>: {i.message}
              </li>
            ))}
          </ul>
        </Alert>
      )}
    </div>
  );
}

function PreviewTable({ result }: { result: SourcePreview }) {
  if (result.rows.length === 0) return <p class="muted">The source has no rows to preview.</p>;
  const failed = result.rows.filter((r) => r.errors.length > 0).length;
  return (
    <>
      <div class="table-wrap">
        <table class="table small" aria-label="Preview of the first rows">
          <thead>
            <tr>
              <th scope="col">Profile id</th>
              <th scope="col">Properties written</th>
            </tr>
          </thead>
          <tbody>
            {result.rows.map((r, i) => (
              <tr key={i}>
                <td class="mono">{r.id ?? 'NULL'}</td>
                <td>
                  {r.errors.length > 0 ? (
                    <div class="field-error">{r.errors.join('; ')}</div>
                  ) : r.skipped ? (
                    <span class="muted">skipped by the script</span>
                  ) : (
                    <pre class="json small">{JSON.stringify(r.properties, null, 2)}</pre>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <p class="muted small">
        Nothing is written during a preview. {failed} of {result.rows.length} rows failed.
      </p>
    </>
  );
}
