// The Customer Model: view and edit the typed properties of profiles, nested objects and arrays
// included. Saving sends the whole model (PUT /v1/profile-schema); refused changes (422, or 409 when a
// change would break a pipeline or stored profiles) are shown next to the property they name. Below the
// model, which source pipelines write each property.

import { useEffect, useMemo, useState } from 'preact/hooks';
import { useAccess } from '../access';
import { api, ApiError, errorMessage, fieldErrors, type FieldErrors, type ModelLineage } from '../api';
import { Alert, ErrorAlert, FieldErrorsText, Loading, PageHeader, useToast } from '../components/ui';
import { setSchemaCache, useAsync, useTitle } from '../hooks';
import { fromWire, hasChildren, isRowPath, localModelProblems, newProp, toWire, type EditProp } from '../lib/model';
import { BUILTIN_PROPERTIES, SCALAR_TYPES, type TypeKind } from '../lib/schema';
import { countErrors, errorsAt } from '../lib/util';

const KINDS: TypeKind[] = [...SCALAR_TYPES, 'array', 'object'];
const KIND_LABEL: Record<string, string> = {
  string: 'string',
  boolean: 'boolean',
  int: 'int',
  float: 'float',
  decimal: 'decimal',
  datetime: 'datetime',
  date: 'date',
  time: 'time',
  uuid: 'uuid',
  json: 'json',
  array: 'array',
  object: 'object',
};

export function CustomerModelPage() {
  const access = useAccess();
  useTitle('Customer Model');
  const toast = useToast();
  const [props, setProps] = useState<EditProp[] | null>(null);
  const [saved, setSaved] = useState<string>('');
  const [loadError, setLoadError] = useState<unknown>(null);
  const [errors, setErrors] = useState<FieldErrors>({});
  const [message, setMessage] = useState<string | null>(null);
  const [saving, setSaving] = useState(false);

  const load = async () => {
    try {
      const s = await api.getSchema();
      const p = fromWire(s.properties);
      setProps(p);
      setSaved(JSON.stringify(toWire(p)));
      setLoadError(null);
    } catch (e) {
      setLoadError(e);
    }
  };
  useEffect(() => void load(), []);

  const wire = useMemo(() => (props ? JSON.stringify(toWire(props)) : ''), [props]);
  const dirty = props !== null && wire !== saved;

  const change = (next: EditProp[], structural = false) => {
    setProps(next);
    if (structural) setErrors({});
  };

  const save = async (e: Event) => {
    e.preventDefault();
    if (!props) return;
    const local = localModelProblems(props);
    if (countErrors(local)) {
      setErrors(local);
      setMessage(`Fix the ${countErrors(local) === 1 ? 'highlighted problem' : `${countErrors(local)} highlighted problems`} first.`);
      return;
    }
    setSaving(true);
    setMessage(null);
    try {
      const s = await api.putSchema(toWire(props));
      setSchemaCache(s);
      const p = fromWire(s.properties);
      setProps(p);
      setSaved(JSON.stringify(toWire(p)));
      setErrors({});
      toast('success', 'Customer Model saved.');
    } catch (err) {
      setErrors(fieldErrors(err));
      setMessage(err instanceof ApiError && err.status === 409 ? `The change was refused: ${err.message}` : errorMessage(err));
    } finally {
      setSaving(false);
    }
  };

  const unplaced = Object.entries(errors).filter(([k]) => !isRowPath(k));

  return (
    <div class="page">
      <PageHeader
        title="Customer Model"
        subtitle="The typed properties every profile can have. Filters and mappings use them; nested object properties are addressed by dotted paths such as address.city."
      />
      <ErrorAlert error={loadError} />
      {!props && !loadError && <Loading />}
      {props && (
        <form class="card section" onSubmit={save} noValidate aria-label="Customer Model properties">
          {message && (
            <Alert title={message}>
              {unplaced.length > 0 && (
                <ul class="error-summary">
                  {unplaced.flatMap(([k, v]) => v.map((m, i) => <li key={k + i}>{m}</li>))}
                </ul>
              )}
            </Alert>
          )}
          <div class="model-head" aria-hidden="true">
            <span>Name</span>
            <span>Type</span>
            <span>Nullable</span>
            <span>Description</span>
            <span />
          </div>
          <ul class="model-list builtins" aria-label="Built-in properties">
            {BUILTIN_PROPERTIES.map((b) => (
              <li key={b.path} class="model-row builtin">
                <span class="mono">{b.path}</span>
                <span class="mono muted">{b.type}</span>
                <span class="muted">no</span>
                <span class="muted">{b.description} (built in)</span>
                <span />
              </li>
            ))}
          </ul>
          <PropList props={props} onChange={change} errors={errors} path="properties" depth={0} />
          <div class="row gap-s">
            <button type="button" class="button" onClick={() => change([...props, newProp()], true)}>
              + Add property
            </button>
          </div>
          <div class="form-actions">
            <span class="muted small">{dirty ? 'Unsaved changes' : 'No changes'}</span>
            <span class="spacer" />
            <button
              type="button"
              class="button ghost"
              disabled={!dirty}
              onClick={() => {
                setErrors({});
                setMessage(null);
                void load();
              }}
            >
              Discard changes
            </button>
            <button type="submit" class="button primary" disabled={!dirty || saving || !access.can('edit')} title={access.whyNot('edit') ?? undefined}>
              {saving ? 'Saving…' : 'Save Customer Model'}
            </button>
          </div>
        </form>
      )}
      {props && <WrittenBy version={saved} />}
    </div>
  );
}

/** Which source pipelines write each property: several may, and then the source that last changed a
 * profile sets the value. Loaded on its own, so the model can be edited without it. */
export function WrittenBy({ version }: { version: string }) {
  const { data, error } = useAsync<ModelLineage>(() => api.schemaLineage(), [version]);
  const written = data ? data.properties.filter((p) => p.sources.length > 0) : [];
  const none = data ? data.properties.filter((p) => p.sources.length === 0) : [];
  return (
    <section class="card section" aria-labelledby="written-by-title">
      <div class="section-head">
        <div>
          <h2 id="written-by-title">Written by</h2>
          <p class="section-desc">The source pipelines whose mapping writes each property. When several write one, each run writes what it read, so the source that last changed a profile sets the value.</p>
        </div>
      </div>
      {error && !data && <ErrorAlert error={error} />}
      {!data && !error && <Loading />}
      {data && written.length === 0 && data.scripted.length === 0 && <p class="muted">No source pipeline writes the Customer Model: profiles come from the API and imports.</p>}
      {data && written.length > 0 && (
        <ul class="lineage-list" aria-label="Properties written by source pipelines">
          {written.map((p) => (
            <li key={p.path} data-property={p.path}>
              <span class="mono">{p.path}</span>
              {': '}
              {p.sources.map((s, i) => (
                <span key={s.id}>
                  {i > 0 && ', '}
                  {s.name}
                  {!s.enabled && <span class="muted"> (disabled)</span>}
                </span>
              ))}
              {p.sources.length > 1 && <span class="muted"> — several sources: the last to change a profile wins</span>}
            </li>
          ))}
        </ul>
      )}
      {data && data.scripted.length > 0 && (
        <p class="muted" data-scripted>
          Written by a script, so any property: {data.scripted.map((s) => s.name + (s.enabled ? '' : ' (disabled)')).join(', ')}.
        </p>
      )}
      {data && (written.length > 0 || data.scripted.length > 0) && none.length > 0 && (
        <p class="muted" data-unwritten>
          Written only through the API and imports: <span class="mono">{none.map((p) => p.path).join(', ')}</span>
        </p>
      )}
    </section>
  );
}

function PropList({ props, onChange, errors, path, depth }: { props: EditProp[]; onChange: (p: EditProp[], structural?: boolean) => void; errors: FieldErrors; path: string; depth: number }) {
  return (
    <ul class={depth ? 'model-list nested' : 'model-list'}>
      {props.map((p, i) => (
        <PropRow
          key={p.uid}
          prop={p}
          path={`${path}[${i}]`}
          depth={depth}
          errors={errors}
          onChange={(np, structural) => onChange(props.map((x, j) => (j === i ? np : x)), structural)}
          onRemove={() => onChange(props.filter((_, j) => j !== i), true)}
        />
      ))}
    </ul>
  );
}

function PropRow({ prop: p, path, depth, errors, onChange, onRemove }: { prop: EditProp; path: string; depth: number; errors: FieldErrors; onChange: (p: EditProp, structural?: boolean) => void; onRemove: () => void }) {
  const label = p.name || 'new property';
  const rowErrors = [...errorsAt(errors, path), ...errorsAt(errors, `${path}.name`), ...errorsAt(errors, `${path}.type`), ...errorsAt(errors, `${path}.nullable`)];
  const set = (changes: Partial<EditProp>) => onChange({ ...p, ...changes });
  const num = (v: string) => Math.max(0, Math.min(99, Number(v) || 0));
  return (
    <li class={rowErrors.length ? 'model-item has-error' : 'model-item'}>
      <div class="model-row">
        <input
          class="input mono"
          aria-label={`Name of ${depth ? 'nested ' : ''}property ${label}`}
          value={p.name}
          placeholder="property_name"
          spellcheck={false}
          aria-invalid={errorsAt(errors, `${path}.name`).length > 0 || errorsAt(errors, path).length > 0 || undefined}
          onInput={(e) => set({ name: (e.currentTarget as HTMLInputElement).value })}
        />
        <div class="type-cell">
          <select class="input" aria-label={`Type of ${label}`} value={p.kind} onChange={(e) => set({ kind: (e.currentTarget as HTMLSelectElement).value as TypeKind })}>
            {KINDS.map((k) => (
              <option key={k} value={k}>
                {KIND_LABEL[k]}
              </option>
            ))}
          </select>
          {p.kind === 'decimal' && (
            <span class="type-params">
              <input class="input tiny" type="number" min={1} max={38} aria-label={`Precision of ${label}`} value={p.precision} onInput={(e) => set({ precision: num((e.currentTarget as HTMLInputElement).value) })} />
              <input class="input tiny" type="number" min={0} max={38} aria-label={`Scale of ${label}`} value={p.scale} onInput={(e) => set({ scale: num((e.currentTarget as HTMLInputElement).value) })} />
            </span>
          )}
          {p.kind === 'array' && (
            <span class="type-params">
              <span class="muted">of</span>
              <select class="input" aria-label={`Element type of ${label}`} value={p.element} onChange={(e) => set({ element: (e.currentTarget as HTMLSelectElement).value as TypeKind })}>
                {KINDS.filter((k) => k !== 'array').map((k) => (
                  <option key={k} value={k}>
                    {KIND_LABEL[k]}
                  </option>
                ))}
              </select>
              {p.element === 'decimal' && (
                <>
                  <input class="input tiny" type="number" min={1} max={38} aria-label={`Element precision of ${label}`} value={p.elementPrecision} onInput={(e) => set({ elementPrecision: num((e.currentTarget as HTMLInputElement).value) })} />
                  <input class="input tiny" type="number" min={0} max={38} aria-label={`Element scale of ${label}`} value={p.elementScale} onInput={(e) => set({ elementScale: num((e.currentTarget as HTMLInputElement).value) })} />
                </>
              )}
            </span>
          )}
        </div>
        <label class="nullable">
          <input type="checkbox" checked={p.nullable} aria-label={`${label} may be null`} onChange={(e) => set({ nullable: (e.currentTarget as HTMLInputElement).checked })} />
          <span class="nullable-text" aria-hidden="true">
            nullable
          </span>
        </label>
        <input class="input" aria-label={`Description of ${label}`} value={p.description} placeholder="Description" onInput={(e) => set({ description: (e.currentTarget as HTMLInputElement).value })} />
        <button type="button" class="icon-button" aria-label={`Remove ${label}`} title="Remove property" onClick={onRemove}>
          ×
        </button>
      </div>
      <FieldErrorsText errors={rowErrors} />
      {hasChildren(p) && (
        <div class="model-children">
          <PropList props={p.properties} onChange={(children, structural) => onChange({ ...p, properties: children }, structural)} errors={errors} path={`${path}.properties`} depth={depth + 1} />
          <button type="button" class="button small" onClick={() => onChange({ ...p, properties: [...p.properties, newProp()] }, true)}>
            + Add nested property to {p.name || 'object'}
          </button>
        </div>
      )}
    </li>
  );
}
