// The pipeline editor, in the seed's order: name and description, filter, table (with Confirm),
// matching column, transformation (Visual Mapping, JavaScript, Python) with a preview, schedule and
// what happens to rows whose profile leaves the audience; Add / Save shows every problem by its field.

import { useEffect, useId, useMemo, useRef, useState } from 'preact/hooks';
import { useAccess } from '../access';
import {
  api,
  ApiError,
  errorMessage,
  fieldErrors,
  type Destination,
  type FieldErrors,
  type FunctionInfo,
  type PreviewResult,
  type Schedule,
  type TableDescription,
  type TableEntry,
} from '../api';
import { CodeEditor, linesInMessage } from '../components/CodeEditor';
import { ExpressionInput } from '../components/ExpressionInput';
import { FilterBuilder } from '../components/FilterBuilder';
import { Alert, Badge, ErrorAlert, Field, FieldErrorsText, Loading, PageHeader, Spinner, useToast } from '../components/ui';
import { loadFunctions, loadSchema, useDebounced, useTitle } from '../hooks';
import { countConditions, summarizeFilter } from '../lib/filter';
import {
  cleanMapping,
  describePath,
  editorState,
  liveSubset,
  placeOf,
  scriptTemplate,
  toPipelineInput,
  type EditorState,
  type TransformKind,
} from '../lib/pipeline';
import { flattenSchema, type PropertyPath } from '../lib/schema';
import { browserTimeZone, classNames, countErrors, cronProblem, errorsAt, errorsUnder, INTERVALS, isKeyColumn, keyCapableColumns, ON_CHANGE, scheduleErrors, timeZones } from '../lib/util';
import { href, navigate } from '../router';

interface Props {
  /** Editing this pipeline. */
  id?: string;
  /** Adding a pipeline to this destination. */
  destination?: string;
}

interface Loaded {
  state: EditorState;
  destination: Destination | null;
  properties: PropertyPath[];
  functions: FunctionInfo[];
  schemaError?: string;
}

export function PipelineEditorPage({ id, destination }: Props) {
  const [loaded, setLoaded] = useState<Loaded | null>(null);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    let live = true;
    setLoaded(null);
    setError(null);
    (async () => {
      const pipeline = id ? await api.getPipeline(id) : null;
      const destId = pipeline?.destination ?? destination ?? '';
      const [dest, schema, functions] = await Promise.all([
        api.getDestination(destId).catch((e) => {
          if (e instanceof ApiError && e.status === 401) throw e;
          return null;
        }),
        loadSchema(true).then(
          (s) => ({ s, err: undefined as string | undefined }),
          (e) => ({ s: null, err: errorMessage(e) }),
        ),
        loadFunctions().catch(() => [] as FunctionInfo[]),
      ]);
      if (!live) return;
      setLoaded({
        state: pipeline ? editorState(pipeline) : editorState({ destination: destId }),
        destination: dest,
        properties: flattenSchema(schema.s),
        functions,
        schemaError: schema.err,
      });
    })().catch((e) => live && setError(e));
    return () => {
      live = false;
    };
  }, [id, destination]);

  const title = id ? `Manage ${loaded?.state.name || 'pipeline'}` : 'Add pipeline';
  useTitle(title);
  const destId = loaded?.state.destination ?? destination ?? '';
  return (
    <div class="page editor-page">
      <PageHeader
        crumbs={[
          { label: 'Destinations', href: href('destinations') },
          { label: loaded?.destination?.name ?? '…', href: destId ? href('destinations', destId) : undefined },
          { label: id ? loaded?.state.name || 'Pipeline' : 'Add pipeline' },
        ]}
        title={title}
        subtitle={
          id ? (
            <>
              Edit the filter, table, matching column and transformation. <a href={href('pipelines', id, 'runs')}>Runs and monitoring →</a>
            </>
          ) : (
            `A pipeline tells Sluice which profiles to export to ${loaded?.destination?.name ?? 'the destination'} and how to structure them in the table.`
          )
        }
      />
      <ErrorAlert error={error} />
      {!loaded && !error && <Loading />}
      {loaded && <Editor key={id ?? `new-${destination}`} id={id} loaded={loaded} />}
    </div>
  );
}

type TableState = { status: 'none' } | { status: 'loading' } | { status: 'ok'; table: TableDescription } | { status: 'error'; message: string; missing: boolean };

function Editor({ id, loaded }: { id?: string; loaded: Loaded }) {
  const access = useAccess();
  const toast = useToast();
  const [s, setS] = useState<EditorState>(loaded.state);
  const [tableName, setTableName] = useState(loaded.state.table);
  const [table, setTable] = useState<TableState>({ status: 'none' });
  const [errors, setErrors] = useState<FieldErrors>({});
  const [live, setLive] = useState<FieldErrors>({});
  const [saveError, setSaveError] = useState<string | null>(null);
  const [saving, setSaving] = useState(false);
  const [preview, setPreview] = useState<{ busy: boolean; result?: PreviewResult; error?: string }>({ busy: false });
  const [sample, setSample] = useState(0);
  const summaryRef = useRef<HTMLDivElement>(null);
  const { properties, functions } = loaded;
  const confirmed = table.status === 'ok' ? table.table : null;
  // The destination's tables to pick from; typing any other name stays possible.
  const [tables, setTables] = useState<TableEntry[] | null>(null);
  const [tablesError, setTablesError] = useState<string | null>(null);
  useEffect(() => {
    let live = true;
    api.listTables(s.destination).then(
      (r) => live && setTables(r.tables),
      (e) => live && setTablesError(errorMessage(e)),
    );
    return () => {
      live = false;
    };
  }, [s.destination]);
  const tableListId = useId();

  const update = (changes: Partial<EditorState>) => setS((old) => ({ ...old, ...changes }));
  const clearErrors = (prefix: string) =>
    setErrors((old) => {
      const next: FieldErrors = {};
      for (const [k, v] of Object.entries(old)) if (!(k === prefix || k.startsWith(prefix + '.') || k.startsWith(prefix + '['))) next[k] = v;
      return next;
    });

  // Confirm: check the table exists and load its columns.
  const confirmTable = async (name = tableName) => {
    const t = name.trim();
    if (!t) {
      setTable({ status: 'error', message: 'Enter the name of an existing table.', missing: false });
      return;
    }
    setTable({ status: 'loading' });
    clearErrors('table');
    try {
      const desc = await api.describeTable(s.destination, t);
      setTable({ status: 'ok', table: desc });
      update({ table: t });
      const capable = keyCapableColumns(desc);
      if (s.key && !desc.columns.some((c) => c.name === s.key)) update({ key: '' });
      if (!s.key && capable.length === 1) chooseKey(capable[0].name, desc);
    } catch (e) {
      const missing = e instanceof ApiError && e.status === 404;
      setTable({
        status: 'error',
        missing,
        message: missing && !(e instanceof ApiError && e.message) ? `Table “${t}” does not exist in ${loaded.destination?.name ?? 'the destination'}.` : errorMessage(e),
      });
    }
  };

  useEffect(() => {
    if (loaded.state.table) void confirmTable(loaded.state.table);
  }, []);

  const chooseKey = (key: string, desc: TableDescription | null = confirmed) => {
    clearErrors('key');
    setS((old) => {
      const mapping = { ...old.mapping };
      if (key && old.kind === 'mapping' && !(mapping[key] ?? '').trim()) mapping[key] = '_id';
      return { ...old, key, mapping };
    });
    void desc;
  };

  // Live checks of the transformation, key and filter while editing (POST /v1/pipelines/validate).
  const spec = useMemo(() => toPipelineInput(s, confirmed), [s, confirmed]);
  const specText = JSON.stringify(spec);
  const debouncedSpec = useDebounced(specText, 600);
  const validateGen = useRef(0);
  useEffect(() => {
    if (!confirmed || !s.key) return;
    const gen = ++validateGen.current;
    api.validatePipeline(JSON.parse(debouncedSpec)).then(
      () => gen === validateGen.current && setLive({}),
      (e) => {
        if (gen !== validateGen.current) return;
        if (e instanceof ApiError && (e.status === 422 || e.status === 409)) setLive(liveSubset(e.fields));
      },
    );
  }, [debouncedSpec, confirmed]);

  // Preview for scripts (automatic, after typing stops) and on demand for the mapping.
  const runPreview = async () => {
    if (!confirmed || !s.key) {
      setPreview({ busy: false, error: 'Confirm the table and choose the matching column to preview.' });
      return;
    }
    setPreview((p) => ({ ...p, busy: true }));
    try {
      const result = await api.previewPipeline(JSON.parse(specText), 5);
      setPreview({ busy: false, result });
      setSample((i) => Math.min(i, Math.max(0, result.samples.length - 1)));
    } catch (e) {
      if (e instanceof ApiError && e.status === 422) setLive(liveSubset(e.fields));
      setPreview({ busy: false, error: errorMessage(e) });
    }
  };
  const scriptText = s.kind === 'javascript' ? s.javascript : s.kind === 'python' ? s.python : '';
  const debouncedScript = useDebounced(scriptText, 900);
  useEffect(() => {
    if (s.kind !== 'mapping' && debouncedScript.trim() && confirmed && s.key) void runPreview();
  }, [debouncedScript, s.kind, confirmed?.name, s.key]);

  const shown: FieldErrors = useMemo(() => {
    // Errors from the last save win; live checks fill in for the parts being edited.
    const out: FieldErrors = { ...errors };
    for (const [k, v] of Object.entries(live)) if (!(k in out)) out[k] = v;
    return out;
  }, [errors, live]);

  const save = async (e: Event) => {
    e.preventDefault();
    setSaving(true);
    setSaveError(null);
    const body = toPipelineInput(s, confirmed);
    if (tableName.trim() !== body.table) body.table = tableName.trim();
    try {
      const saved = id ? await api.replacePipeline(id, body) : await api.createPipeline(body);
      toast('success', id ? `Pipeline “${saved.name}” saved.` : `Pipeline “${saved.name}” added.${saved.enabled ? '' : ' Enable it to run it.'}`);
      navigate(href('destinations', saved.destination));
    } catch (err) {
      const f = fieldErrors(err);
      if (err instanceof ApiError && err.code === 'NameTaken') f.name = [...(f.name ?? []), err.message];
      setErrors(f);
      setLive({});
      setSaveError(countErrors(f) ? `The pipeline was not saved: ${countErrors(f) === 1 ? 'one problem needs' : `${countErrors(f)} problems need`} fixing.` : errorMessage(err));
      window.requestAnimationFrame(() => summaryRef.current?.focus());
    } finally {
      setSaving(false);
    }
  };

  const setKind = (kind: TransformKind) => {
    setS((old) => {
      const next = { ...old, kind };
      if (kind === 'javascript' && !old.javascript.trim()) next.javascript = scriptTemplate('javascript', confirmed, old.key);
      if (kind === 'python' && !old.python.trim()) next.python = scriptTemplate('python', confirmed, old.key);
      return next;
    });
    setPreview({ busy: false });
  };

  const capable = confirmed ? keyCapableColumns(confirmed) : [];
  const errorList = Object.entries(errors).flatMap(([k, v]) => v.map((m) => ({ path: k, message: m })));

  return (
    <form class="editor" onSubmit={save} noValidate>
      {saveError && (
        <div class="alert alert-error" role="alert" tabIndex={-1} ref={summaryRef}>
          <strong class="alert-title">{saveError}</strong>
          {errorList.length > 0 && (
            <ul class="error-summary">
              {errorList.map((x, i) => (
                <li key={i}>
                  <strong>{describePath(x.path)}:</strong> {x.message}
                </li>
              ))}
            </ul>
          )}
        </div>
      )}
      {errorsAt(errors, 'destination').length > 0 && <Alert>{errorsAt(errors, 'destination').join(' ')}</Alert>}

      <section class="card section" aria-labelledby="sec-general">
        <div class="section-head">
          <h2 id="sec-general">Pipeline</h2>
        </div>
        <div class="form-grid">
          <Field label="Name" required errors={errorsAt(shown, 'name')}>
            {(fid, describedBy, invalid) => (
              <input
                id={fid}
                name="name"
                class="input"
                value={s.name}
                placeholder="Export users"
                aria-describedby={describedBy}
                aria-invalid={invalid || undefined}
                aria-required="true"
                onInput={(e) => {
                  update({ name: (e.currentTarget as HTMLInputElement).value });
                  clearErrors('name');
                }}
              />
            )}
          </Field>
          <Field label="Description" errors={errorsAt(shown, 'description')} class="wide">
            {(fid, describedBy, invalid) => (
              <input
                id={fid}
                name="description"
                class="input"
                value={s.description}
                placeholder="What this pipeline exports, and for whom"
                aria-describedby={describedBy}
                aria-invalid={invalid || undefined}
                onInput={(e) => update({ description: (e.currentTarget as HTMLInputElement).value })}
              />
            )}
          </Field>
        </div>
      </section>

      <section class="card section" aria-labelledby="sec-filter">
        <div class="section-head">
          <div>
            <h2 id="sec-filter">Filter</h2>
            <p class="section-desc">Only profiles that match the conditions are exported. Without conditions, every profile is exported.</p>
          </div>
          {countConditions(s.filter) > 0 && <span class="muted small filter-preview">{summarizeFilter(s.filter)}</span>}
        </div>
        {loaded.schemaError && <Alert kind="warning">The Customer Model could not be loaded: {loaded.schemaError}</Alert>}
        <FilterBuilder
          count
          filter={s.filter}
          properties={properties}
          errors={shown}
          onChange={(f) => {
            update({ filter: f });
            clearErrors('filter');
          }}
        />
      </section>

      <section class="card section" aria-labelledby="sec-table">
        <div class="section-head">
          <div>
            <h2 id="sec-table">Table</h2>
            <p class="section-desc">Pick the table to synchronize from the list, or type its name and click Confirm; the table must already exist.</p>
          </div>
        </div>
        <Field label="Table name" required errors={errorsAt(shown, 'table')}>
          {(fid, describedBy, invalid) => (
            <div class="input-with-button">
              <input
                id={fid}
                name="table"
                class="input mono"
                value={tableName}
                placeholder="customers"
                spellcheck={false}
                aria-describedby={describedBy}
                aria-invalid={invalid || table.status === 'error' || undefined}
                aria-required="true"
                list={tables && tables.length ? tableListId : undefined}
                autoComplete="off"
                onInput={(e) => {
                  const v = (e.currentTarget as HTMLInputElement).value;
                  setTableName(v);
                  if (table.status === 'error') setTable({ status: 'none' });
                  // A name picked from the list is a table that exists: load it at once.
                  if (tables?.some((t) => t.name === v) && confirmed?.name !== v) void confirmTable(v);
                }}
                onKeyDown={(e) => {
                  if (e.key === 'Enter') {
                    e.preventDefault();
                    void confirmTable();
                  }
                }}
              />
              <button type="button" class="button" onClick={() => void confirmTable()} disabled={table.status === 'loading'}>
                {table.status === 'loading' ? (
                  <>
                    <Spinner label="Checking the table" /> Checking…
                  </>
                ) : (
                  'Confirm'
                )}
              </button>
            </div>
          )}
        </Field>
        {tables && tables.length > 0 && (
          <datalist id={tableListId}>
            {tables.map((t) => (
              <option key={`${t.schema ?? ''}.${t.name}`} value={t.name}>
                {t.schema ? `${t.schema}.${t.name}` : t.name}
              </option>
            ))}
          </datalist>
        )}
        <p class="muted small" data-testid="table-list-note">
          {tables === null && !tablesError && 'Loading the tables of the destination…'}
          {tables !== null &&
            (tables.length === 0
              ? 'The destination has no tables yet: create the table in the database, then type its name.'
              : `${tables.length} ${tables.length === 1 ? 'table' : 'tables'}${tables[0].schema ? ` in schema ${tables[0].schema}` : ''} to pick from; start typing to search.`)}
          {tablesError && `The tables could not be listed (${tablesError}); type the name instead.`}
        </p>
        <div aria-live="polite">
          {table.status === 'error' && (
            <Alert title={table.missing ? 'The table does not exist' : 'The table could not be checked'}>{table.message}</Alert>
          )}
          {confirmed && tableName.trim() !== confirmed.name && <p class="muted small">Press Confirm to load the columns of “{tableName.trim()}”.</p>}
          {confirmed && <TableColumns table={confirmed} keyColumn={s.key} />}
        </div>
      </section>

      <section class="card section" aria-labelledby="sec-key">
        <div class="section-head">
          <div>
            <h2 id="sec-key">Matching column</h2>
            <p class="section-desc">
              Sluice uses this column to match profiles: if a row with the same key already exists, it is updated; otherwise a new row is created. Choose a column that
              contains a unique, stable identifier — for example a customer ID, user ID or email address. Avoid columns that can change over time, such as names or
              phone numbers.
            </p>
          </div>
        </div>
        <Field label="Matching column" required errors={errorsAt(shown, 'key')} help={confirmed ? 'Only string, integer and UUID columns with a primary-key or unique constraint can match rows.' : 'Confirm the table first.'}>
          {(fid, describedBy, invalid) => (
            <select
              id={fid}
              name="key"
              class="input"
              value={s.key}
              disabled={!confirmed}
              aria-describedby={describedBy}
              aria-invalid={invalid || undefined}
              aria-required="true"
              onChange={(e) => chooseKey((e.currentTarget as HTMLSelectElement).value)}
            >
              <option value="">{confirmed ? 'Choose a column…' : '—'}</option>
              {s.key && confirmed && !capable.some((c) => c.name === s.key) && <option value={s.key}>{s.key} (not usable)</option>}
              {capable.map((c) => (
                <option key={c.name} value={c.name}>
                  {c.name} — {c.type}
                </option>
              ))}
            </select>
          )}
        </Field>
        {confirmed && capable.length === 0 && (
          <Alert kind="warning" title="No column can match rows">
            The table has no string, integer or UUID column with a primary-key or unique constraint. Add one, for example{' '}
            <code>ALTER TABLE {confirmed.name} ADD UNIQUE (customer_id)</code>, then press Confirm again.
          </Alert>
        )}
      </section>

      <section class="card section" aria-labelledby="sec-transformation">
        <div class="section-head">
          <div>
            <h2 id="sec-transformation">Transformation</h2>
            <p class="section-desc">
              Decide how customer data is written into the table: map properties to columns visually, or use JavaScript or Python for more advanced logic. Only the mapped
              columns are written; other columns keep their values (or their defaults on insert).
            </p>
          </div>
        </div>
        <FieldErrorsText errors={[...errorsAt(shown, 'transformation')]} />
        <TransformTabs kind={s.kind} onChange={setKind} />
        <div role="tabpanel" id={`panel-${s.kind}`} aria-labelledby={`tab-${s.kind}`} class="tab-panel">
          {s.kind === 'mapping' && (
            <MappingEditor
              table={confirmed}
              mapping={s.mapping}
              keyColumn={s.key}
              properties={properties}
              functions={functions}
              errors={shown}
              onChange={(col, expr) => {
                setS((old) => ({ ...old, mapping: { ...old.mapping, [col]: expr } }));
                clearErrors(`transformation.mapping.${col}`);
                clearErrors('transformation.mapping');
              }}
              onFill={(m) => setS((old) => ({ ...old, mapping: { ...m, ...cleanMapping(old.mapping) } }))}
            />
          )}
          {s.kind !== 'mapping' && (
            <ScriptEditor
              kind={s.kind}
              code={s.kind === 'javascript' ? s.javascript : s.python}
              errors={errorsUnder(shown, `transformation.${s.kind}`)}
              onChange={(code) => {
                update(s.kind === 'javascript' ? { javascript: code } : { python: code });
                clearErrors(`transformation.${s.kind}`);
              }}
              onReset={() => update(s.kind === 'javascript' ? { javascript: scriptTemplate('javascript', confirmed, s.key) } : { python: scriptTemplate('python', confirmed, s.key) })}
            />
          )}
          <PreviewPanel state={preview} sample={sample} onSample={setSample} onRun={runPreview} ready={!!confirmed && !!s.key} auto={s.kind !== 'mapping'} />
        </div>
      </section>

      <section class="card section" aria-labelledby="sec-schedule">
        <div class="section-head">
          <div>
            <h2 id="sec-schedule">Schedule, audience changes and alerts</h2>
            <p class="section-desc">A disabled pipeline never runs, even when scheduled. You can run an enabled pipeline at any time with Run now.</p>
          </div>
        </div>
        <div class="form-grid">
          <div class="field checkbox-field">
            <label>
              <input type="checkbox" name="enabled" checked={s.enabled} onChange={(e) => update({ enabled: (e.currentTarget as HTMLInputElement).checked })} /> Enabled
            </label>
            <div class="help">{s.enabled ? 'The pipeline runs on its schedule and with Run now.' : 'Turn it on when the preview looks right.'}</div>
          </div>
          <ScheduleField
            value={s.schedule}
            onChange={(v) => {
              update({ schedule: v });
              clearErrors('schedule');
            }}
            errors={scheduleErrors(shown)}
          />
          <ReconcileField
            value={s.reconcile_every}
            scheduled={s.schedule !== null}
            onChange={(v) => {
              update({ reconcile_every: v });
              clearErrors('reconcile_every');
            }}
            errors={errorsUnder(shown, 'reconcile_every')}
          />
        </div>
        <fieldset class="fieldset">
          <legend>When a profile leaves the audience</legend>
          <p class="help">A profile leaves when it no longer matches the filter or is deleted.</p>
          <label class="radio">
            <input type="radio" name="on_leave" value="keep" checked={s.on_leave === 'keep'} onChange={() => update({ on_leave: 'keep' })} />
            <span>
              <strong>Keep its row</strong> <span class="muted">(default) — the row stays in the table as last written.</span>
            </span>
          </label>
          <label class="radio">
            <input type="radio" name="on_leave" value="delete" checked={s.on_leave === 'delete'} onChange={() => update({ on_leave: 'delete' })} />
            <span>
              <strong>Delete its row</strong> <span class="muted">— the table holds exactly the current audience.</span>
            </span>
          </label>
          <FieldErrorsText errors={errorsAt(shown, 'on_leave')} />
        </fieldset>
        <div class="form-grid">
          <Field
            label="Alert webhook"
            class="wide"
            errors={errorsUnder(shown, 'alert_webhook')}
            help="Optional. An http(s) URL that gets a JSON POST when a run fails, fails too many rows, or succeeds again after failing. Leave empty for none."
          >
            {(fid, describedBy, invalid) => (
              <input
                id={fid}
                name="alert_webhook"
                type="url"
                inputMode="url"
                autoComplete="off"
                spellcheck={false}
                class="input mono"
                value={s.alert_webhook}
                placeholder="https://hooks.example.com/sluice"
                aria-describedby={describedBy}
                aria-invalid={invalid || undefined}
                onInput={(e) => {
                  update({ alert_webhook: (e.currentTarget as HTMLInputElement).value });
                  clearErrors('alert_webhook');
                }}
              />
            )}
          </Field>
        </div>
        <FieldErrorsText errors={Object.entries(errors).filter(([k]) => placeOf(k) === 'other' || placeOf(k) === 'enabled').flatMap(([k, v]) => v.map((m) => `${k}: ${m}`))} />
      </section>

      <div class="form-actions sticky-actions">
        <span class="muted small">{countErrors(live) > 0 && `${countErrors(live)} problem${countErrors(live) === 1 ? '' : 's'} found while checking`}</span>
        <span class="spacer" />
        <a class="button ghost" href={href('destinations', s.destination)}>
          Cancel
        </a>
        <button type="submit" class="button primary" disabled={saving || !access.can('edit')} title={access.whyNot('edit') ?? undefined}>
          {saving ? 'Saving…' : id ? 'Save' : 'Add'}
        </button>
      </div>
    </form>
  );
}

function TableColumns({ table, keyColumn }: { table: TableDescription; keyColumn: string }) {
  return (
    <div class="table-info">
      <p class="small">
        <strong class="mono">{table.name}</strong> has {table.columns.length} column{table.columns.length === 1 ? '' : 's'}
        {table.keys.length > 0 && (
          <>
            {' '}
            · keys:{' '}
            {table.keys.map((k, i) => (
              <span key={i} class="mono">
                {i > 0 && ', '}({k.join(', ')})
              </span>
            ))}
          </>
        )}
      </p>
      {table.issues.length > 0 && (
        <Alert kind="warning" title="Issues">
          <ul>
            {table.issues.map((i, n) => (
              <li key={n}>{i}</li>
            ))}
          </ul>
        </Alert>
      )}
      <div class="table-wrap compact">
        <table class="table small-table">
          <caption class="sr-only">Columns of {table.name}</caption>
          <thead>
            <tr>
              <th scope="col">Column</th>
              <th scope="col">Type</th>
              <th scope="col">Nullable</th>
              <th scope="col">Key</th>
            </tr>
          </thead>
          <tbody>
            {table.columns.map((c) => (
              <tr key={c.name}>
                <td class="mono">{c.name}</td>
                <td class="mono muted">
                  {c.type}
                  {c.supported === false && (
                    <Badge kind="warning" title="Sluice cannot write this column's type">
                      unsupported
                    </Badge>
                  )}
                </td>
                <td>{c.nullable ? 'yes' : 'no'}</td>
                <td>
                  {table.primary_key?.includes(c.name) ? <Badge kind="info">primary key</Badge> : isKeyColumn(table, c.name) ? <Badge kind="info">unique</Badge> : null}
                  {c.name === keyColumn && <Badge kind="success">matching column</Badge>}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </div>
  );
}

export function TransformTabs({ kind, onChange }: { kind: TransformKind; onChange: (k: TransformKind) => void }) {
  const tabs: { k: TransformKind; label: string }[] = [
    { k: 'mapping', label: 'Visual Mapping' },
    { k: 'javascript', label: 'JavaScript' },
    { k: 'python', label: 'Python' },
  ];
  const onKey = (e: KeyboardEvent) => {
    const i = tabs.findIndex((t) => t.k === kind);
    let n = -1;
    if (e.key === 'ArrowRight') n = (i + 1) % tabs.length;
    else if (e.key === 'ArrowLeft') n = (i - 1 + tabs.length) % tabs.length;
    else if (e.key === 'Home') n = 0;
    else if (e.key === 'End') n = tabs.length - 1;
    if (n >= 0) {
      e.preventDefault();
      onChange(tabs[n].k);
      window.requestAnimationFrame(() => document.getElementById(`tab-${tabs[n].k}`)?.focus());
    }
  };
  return (
    <div class="tabs" role="tablist" aria-label="Transformation kind" onKeyDown={onKey}>
      {tabs.map((t) => (
        <button
          key={t.k}
          type="button"
          role="tab"
          id={`tab-${t.k}`}
          aria-selected={kind === t.k}
          aria-controls={`panel-${t.k}`}
          tabIndex={kind === t.k ? 0 : -1}
          class={classNames('tab', kind === t.k && 'active')}
          onClick={() => onChange(t.k)}
        >
          {t.label}
        </button>
      ))}
    </div>
  );
}

interface MappingProps {
  table: TableDescription | null;
  mapping: Record<string, string>;
  keyColumn: string;
  properties: PropertyPath[];
  functions: FunctionInfo[];
  errors: FieldErrors;
  onChange: (column: string, expr: string) => void;
  onFill: (m: Record<string, string>) => void;
}

function MappingEditor({ table, mapping, keyColumn, properties, functions, errors, onChange, onFill }: MappingProps) {
  if (!table) return <p class="muted">Confirm the table to map its columns.</p>;
  const extra = Object.keys(mapping).filter((k) => mapping[k]?.trim() && !table.columns.some((c) => c.name === k));
  const sameName: Record<string, string> = {};
  for (const c of table.columns) if (!mapping[c.name]?.trim() && properties.some((p) => !p.builtin && p.path === c.name)) sameName[c.name] = c.name;
  const fillable = Object.keys(sameName).length;
  return (
    <div class="mapping">
      <div class="row space-between">
        <p class="help">
          One expression per column: property paths (<code>email</code>, <code>address.city</code>), literals (<code>"text"</code>, <code>42</code>), concatenation (
          <code>first_name " " last_name</code>) and functions (<code>lower(email)</code>). Leave a column empty to leave it untouched. Press Ctrl+Space for suggestions.
        </p>
        {fillable > 0 && (
          <button type="button" class="button small" onClick={() => onFill(sameName)}>
            Map {fillable} column{fillable === 1 ? '' : 's'} with the same name
          </button>
        )}
      </div>
      <FieldErrorsText errors={errorsAt(errors, 'transformation.mapping')} />
      <div class="mapping-table" role="table" aria-label="Visual mapping">
        <div class="mapping-row mapping-head" role="row">
          <span role="columnheader">Column</span>
          <span role="columnheader">Expression</span>
        </div>
        {table.columns.map((c) => {
          const errs = errorsAt(errors, `transformation.mapping.${c.name}`);
          const errId = `maperr-${c.name}`;
          return (
            <div class={classNames('mapping-row', errs.length > 0 && 'has-error')} role="row" key={c.name}>
              <div class="mapping-col" role="cell">
                <span class="mono strong">{c.name}</span>
                {c.name === keyColumn && <Badge kind="success">key</Badge>}
                <div class="muted small mono">
                  {c.type}
                  {!c.nullable && ' · not null'}
                  {c.has_default && ' · has default'}
                </div>
              </div>
              <div class="mapping-expr" role="cell">
                <ExpressionInput
                  id={`map-${c.name}`}
                  value={mapping[c.name] ?? ''}
                  onInput={(v) => onChange(c.name, v)}
                  properties={properties}
                  functions={functions}
                  label={`Expression for column ${c.name}`}
                  describedBy={errs.length ? errId : undefined}
                  invalid={errs.length > 0}
                  placeholder={c.supported === false ? 'unsupported type' : c.name === keyColumn ? '_id' : 'not written'}
                />
                <FieldErrorsText id={errId} errors={errs} />
              </div>
            </div>
          );
        })}
        {extra.map((col) => (
          <div class="mapping-row has-error" role="row" key={col}>
            <div class="mapping-col" role="cell">
              <span class="mono strong">{col}</span>
              <div class="muted small">not in the table</div>
            </div>
            <div class="mapping-expr" role="cell">
              <div class="row gap-s">
                <code class="grow">{mapping[col]}</code>
                <button type="button" class="button small ghost" onClick={() => onChange(col, '')}>
                  Remove
                </button>
              </div>
              <FieldErrorsText errors={errorsAt(errors, `transformation.mapping.${col}`)} />
            </div>
          </div>
        ))}
      </div>
      {functions.length > 0 && (
        <details class="functions-ref">
          <summary>Functions ({functions.length})</summary>
          <dl>
            {functions.map((f) => (
              <div key={f.name}>
                <dt class="mono">{f.signature || f.name}</dt>
                <dd>{f.description}</dd>
              </div>
            ))}
          </dl>
        </details>
      )}
    </div>
  );
}

function ScriptEditor({ kind, code, errors, onChange, onReset }: { kind: 'javascript' | 'python'; code: string; errors: string[]; onChange: (c: string) => void; onReset: () => void }) {
  const lines = errors.flatMap(linesInMessage);
  const label = kind === 'javascript' ? 'JavaScript' : 'Python';
  return (
    <div class="script">
      <div class="row space-between">
        <p class="help">
          {kind === 'javascript' ? (
            <>
              Define <code>transform(profile)</code> returning an object keyed by column name, or <code>null</code> to skip the profile.
            </>
          ) : (
            <>
              Define <code>transform(profile)</code> returning a dict keyed by column name, or <code>None</code> to skip the profile.
            </>
          )}{' '}
          Tab indents; press Esc then Tab to leave the editor.
        </p>
        <button type="button" class="button small ghost" onClick={onReset}>
          Reset to template
        </button>
      </div>
      <CodeEditor id={`code-${kind}`} value={code} onInput={onChange} label={`${label} transformation`} errorLines={lines} describedBy={errors.length ? `code-${kind}-err` : undefined} />
      <FieldErrorsText id={`code-${kind}-err`} errors={errors} />
    </div>
  );
}

function PreviewPanel({
  state,
  sample,
  onSample,
  onRun,
  ready,
  auto,
}: {
  state: { busy: boolean; result?: PreviewResult; error?: string };
  sample: number;
  onSample: (i: number) => void;
  onRun: () => void;
  ready: boolean;
  auto: boolean;
}) {
  const samples = state.result?.samples ?? [];
  const cur = samples[Math.min(sample, samples.length - 1)];
  return (
    <div class="preview" aria-live="polite">
      <div class="row space-between">
        <h3>Preview</h3>
        <div class="row gap-s">
          {samples.length > 1 && (
            <label class="inline-label">
              <span>Sample profile</span>
              <select value={String(sample)} onChange={(e) => onSample(Number((e.currentTarget as HTMLSelectElement).value))}>
                {samples.map((x, i) => (
                  <option key={i} value={String(i)}>
                    {x.profile._id}
                    {x.error ? ' (error)' : ` (${x.action})`}
                  </option>
                ))}
              </select>
            </label>
          )}
          <button type="button" class="button small" onClick={onRun} disabled={state.busy || !ready}>
            {state.busy ? 'Running…' : 'Preview on sample profiles'}
          </button>
        </div>
      </div>
      {!ready && <p class="muted small">Confirm the table and choose the matching column to preview{auto ? ' (the preview then follows your edits)' : ''}.</p>}
      {state.error && <Alert title="Preview failed">{state.error}</Alert>}
      {state.result && samples.length === 0 && <p class="muted">No profile matches the filter, so there is nothing to preview.</p>}
      {cur && (
        <div class="preview-grid">
          <div>
            <div class="preview-label">Profile {cur.profile._id}</div>
            <pre class="json">{JSON.stringify(cur.profile, null, 2)}</pre>
          </div>
          <div>
            <div class="preview-label">
              Row{' '}
              <Badge kind={cur.error ? 'failed' : cur.action}>{cur.error ? 'error' : cur.action}</Badge>
            </div>
            {cur.error ? <div class="field-error">{cur.error}</div> : cur.row ? <pre class="json">{JSON.stringify(cur.row, null, 2)}</pre> : <p class="muted">{cur.reason ?? 'Skipped: no row is written.'}</p>}
          </div>
        </div>
      )}
      {samples.length > 0 && <p class="muted small">Nothing is written during a preview. {state.result && `${samples.filter((x) => x.error).length} of ${samples.length} samples failed.`}</p>}
    </div>
  );
}

/** The reconcile intervals offered; another one set through the API or CLI is shown as it is. */
const RECONCILE_CHOICES: [string, string][] = [
  ['', 'Off'],
  ['1d', '1 day'],
  ['1w', '1 week'],
];

export function ReconcileField({ value, scheduled, onChange, errors }: { value: string; scheduled: boolean; onChange: (v: string) => void; errors: string[] }) {
  const choices = RECONCILE_CHOICES.some(([v]) => v === value) ? RECONCILE_CHOICES : [...RECONCILE_CHOICES, [value, value] as [string, string]];
  const help = !value
    ? 'Scheduled runs check row counts only; reconcile by hand to find rows edited by someone else.'
    : scheduled
      ? 'A scheduled run reads every row back and rewrites what differs when the last reconcile is at least this old.'
      : 'Takes effect once the pipeline has a schedule.';
  return (
    <Field label="Reconcile every" errors={errors} help={help}>
      {(fid, describedBy, invalid) => (
        <select
          id={fid}
          name="reconcile_every"
          class="input"
          value={value}
          aria-describedby={describedBy}
          aria-invalid={invalid || undefined}
          onChange={(e) => onChange((e.currentTarget as HTMLSelectElement).value)}
        >
          {choices.map(([v, label]) => (
            <option key={v} value={v}>
              {label}
            </option>
          ))}
        </select>
      )}
    </Field>
  );
}

/** The schedule picker; `onChangeChoice` offers "when profiles change", which only exports have. */
export function ScheduleField({
  value,
  onChange,
  errors,
  onChangeChoice = true,
  intervals = INTERVALS,
}: {
  value: Schedule;
  onChange: (s: Schedule) => void;
  errors: { schedule: string[]; cron: string[]; timezone: string[] };
  onChangeChoice?: boolean;
  /** The fixed intervals offered: a source's picker adds its short ones. */
  intervals?: { value: string; label: string }[];
}) {
  const isCron = value !== null && typeof value === 'object';
  const selectValue = value === null ? 'off' : isCron ? 'cron' : value === '1d' ? '24h' : value;
  const zones = useMemo(timeZones, []);
  const cron = isCron ? (value as { cron: string; timezone: string }) : null;
  const problem = cron ? cronProblem(cron.cron) : null;
  return (
    <div class="field-pair">
      <Field label="Schedule" errors={cron ? errors.schedule : [...errors.schedule, ...errors.cron, ...errors.timezone]}>
        {(fid, describedBy, invalid) => (
          <select
            id={fid}
            class="input"
            name="schedule"
            value={selectValue}
            aria-describedby={describedBy}
            aria-invalid={invalid || undefined}
            onChange={(e) => {
              const v = (e.currentTarget as HTMLSelectElement).value;
              if (v === 'off') onChange(null);
              else if (v === 'cron') onChange({ cron: '0 3 * * *', timezone: browserTimeZone() });
              else onChange(v as Schedule);
            }}
          >
            <option value="off">Off (run only with Run now)</option>
            {onChangeChoice && <option value={ON_CHANGE.value}>{ON_CHANGE.label}</option>}
            {intervals.map((i) => (
              <option key={i.value} value={i.value}>
                {i.label}
              </option>
            ))}
            <option value="cron">Custom (cron expression)</option>
          </select>
        )}
      </Field>
      {cron && (
        <div class="row gap-s wrap">
          <Field label="Cron expression" errors={[...(problem ? [problem] : []), ...errors.cron]} help="minute hour day month weekday">
            {(fid, describedBy, invalid) => (
              <input id={fid} class="input mono" value={cron.cron} aria-describedby={describedBy} aria-invalid={invalid || undefined} onInput={(e) => onChange({ ...cron, cron: (e.currentTarget as HTMLInputElement).value })} />
            )}
          </Field>
          <Field label="Time zone" errors={errors.timezone}>
            {(fid, describedBy, invalid) => (
              <select id={fid} class="input" value={cron.timezone} aria-describedby={describedBy} aria-invalid={invalid || undefined} onChange={(e) => onChange({ ...cron, timezone: (e.currentTarget as HTMLSelectElement).value })}>
                {!zones.includes(cron.timezone) && <option value={cron.timezone}>{cron.timezone}</option>}
                {zones.map((z) => (
                  <option key={z} value={z}>
                    {z}
                  </option>
                ))}
              </select>
            )}
          </Field>
        </div>
      )}
    </div>
  );
}
