// "Add a new destination": a card per database kind, then the connection form rendered from the kind's
// fields (GET /v1/connectors) with Test connection and Add; the same form edits a saved destination.

import { useEffect, useState } from 'preact/hooks';
import { api, ApiError, errorMessage, fieldErrors, type Connector, type ConnectorField, type Destination, type FieldErrors, type TestResult } from '../api';
import { Alert, ErrorAlert, Field, FieldErrorsText, Loading, PageHeader, Spinner, useToast } from '../components/ui';
import { useAsync, useTitle } from '../hooks';
import { applyChange, buildSettings, connectorMonogram, initialValues, isTlsField, localProblems, type FormValues, type TlsValue } from '../lib/connectors';
import { parseConnectionUrl, type ParsedUrl } from '../lib/connection-url';
import { classNames, countErrors, errorsAt } from '../lib/util';
import { href, navigate } from '../router';

const URL_EXAMPLES: Record<string, string> = {
  postgresql: 'postgres://user:password@host:5432/database',
  mysql: 'mysql://user:password@host:3306/database',
  clickhouse: 'clickhouse://user:password@host:9000/database',
  snowflake: 'https://<orgname>-<account>.snowflakecomputing.com',
};

export function NewDestinationPage() {
  useTitle('Add a new destination');
  const { data, error, loading } = useAsync(() => api.connectors(), []);
  return (
    <div class="page">
      <PageHeader
        crumbs={[{ label: 'Destinations', href: href('destinations') }, { label: 'Add a new destination' }]}
        title="Add a new destination"
        subtitle="Choose the database to keep in step with your customer profiles."
      />
      <ErrorAlert error={error} />
      {loading && !data && <Loading />}
      {data && (
        <ul class="connector-grid" aria-label="Database kinds">
          {data.map((c) => {
            const available = c.available !== false;
            return (
              <li key={c.kind}>
                <a
                  class={classNames('connector-card card', !available && 'disabled')}
                  href={available ? href('destinations', 'new', c.kind) : undefined}
                  aria-disabled={!available || undefined}
                  aria-label={available ? `${c.label}: add destination` : `${c.label}: not available in this build`}
                >
                  <span class={`monogram big mono-${c.kind}`} aria-hidden="true">
                    {connectorMonogram(c.kind)}
                  </span>
                  <span class="connector-name">{c.label}</span>
                  {c.description && <span class="connector-desc">{c.description}</span>}
                  <span class="connector-cta">{available ? 'Add destination …' : 'Coming soon'}</span>
                </a>
              </li>
            );
          })}
        </ul>
      )}
    </div>
  );
}

interface FormPageProps {
  /** Adding a destination of this kind. */
  kind?: string;
  /** Editing this destination. */
  id?: string;
}

export function DestinationFormPage({ kind, id }: FormPageProps) {
  const { data, error, loading } = useAsync(async () => {
    const [connectors, destination] = await Promise.all([api.connectors(), id ? api.getDestination(id) : Promise.resolve(undefined)]);
    return { connectors, destination };
  }, [kind, id]);
  const k = data?.destination?.type ?? kind;
  const connector = data?.connectors.find((c) => c.kind === k);
  const title = id ? `Edit ${data?.destination?.name ?? 'destination'}` : `Add ${connector?.label ?? kind} destination`;
  useTitle(title);
  return (
    <div class="page narrow">
      <PageHeader
        crumbs={
          id
            ? [
                { label: 'Destinations', href: href('destinations') },
                { label: data?.destination?.name ?? '…', href: href('destinations', id) },
                { label: 'Edit connection' },
              ]
            : [
                { label: 'Destinations', href: href('destinations') },
                { label: 'Add a new destination', href: href('destinations', 'new') },
                { label: connector?.label ?? kind ?? '' },
              ]
        }
        title={title}
        subtitle={
          id
            ? 'Change the connection settings. Leave a secret blank to keep the stored one.'
            : 'Enter the connection details of the database. It is recommended to use a user account with access restricted to this database and, if possible, only to the tables to synchronize.'
        }
      />
      <ErrorAlert error={error} />
      {loading && !data && <Loading />}
      {data && !connector && <Alert title="Unknown destination kind">Sluice does not know destinations of type “{k}”.</Alert>}
      {data && connector && <ConnectionForm key={`${k}-${id}`} connector={connector} destination={data.destination} />}
    </div>
  );
}

type TestState =
  | { status: 'idle' }
  | { status: 'testing' }
  | { status: 'done'; result: TestResult }
  | { status: 'error'; message: string }
  // The test did not run: something the browser knows is missing.
  | { status: 'not-run'; message: string };

/** Why a connection test cannot run yet: the labels of the required fields left empty, named. */
export function missingFieldsMessage(connector: Connector, problems: Record<string, string[]>): string {
  const labels = connector.fields.filter((f) => problems[`settings.${f.name}`]).map((f) => f.label);
  if (labels.length === 0) return 'Fix the highlighted fields to test the connection.';
  const list = labels.length === 1 ? labels[0] : `${labels.slice(0, -1).join(', ')} and ${labels[labels.length - 1]}`;
  const empty = connector.fields.filter((f) => problems[`settings.${f.name}`]?.some((m) => / is required$/.test(m))).length === labels.length;
  return empty ? `Fill in ${list} to test the connection.` : `Fix ${list} to test the connection.`;
}

/** The form's values after a pasted URL's: fields the URL names are set, TLS first so that a port whose
 *  default follows TLS moves with it unless the URL gives one. Answers the labels filled in. */
export function applyUrl(connector: Connector, values: FormValues, parsed: ParsedUrl): { values: FormValues; filled: string[] } {
  let next = values;
  const filled: string[] = [];
  const fields = [...connector.fields].sort((a, b) => Number(isTlsField(b)) - Number(isTlsField(a)));
  for (const f of fields) {
    const v = parsed.values[f.name];
    if (v === undefined) continue;
    next = applyChange(connector, next, f.name, v);
    filled.push(f.label);
  }
  return { values: next, filled };
}

export function ConnectionForm({ connector, destination }: { connector: Connector; destination?: Destination }) {
  const editing = !!destination;
  const toast = useToast();
  const [name, setName] = useState(destination?.name ?? connector.label);
  const [values, setValues] = useState<FormValues>(() => initialValues(connector, destination?.settings));
  const [errors, setErrors] = useState<FieldErrors>({});
  const [formError, setFormError] = useState<string | null>(null);
  const [saving, setSaving] = useState(false);
  const [test, setTest] = useState<TestState>({ status: 'idle' });
  const [dirty, setDirty] = useState(false);

  useEffect(() => setTest({ status: 'idle' }), [values]);

  const set = (field: string, v: FormValues[string]) => {
    setValues((old) => applyChange(connector, old, field, v));
    setDirty(true);
    setErrors((e) => {
      const { [`settings.${field}`]: _drop, ...rest } = e;
      return rest;
    });
  };

  const runTest = async () => {
    const local = localProblems(connector, name || 'x', values, editing);
    delete local.name;
    if (countErrors(local)) {
      setErrors(local);
      setTest({ status: 'not-run', message: missingFieldsMessage(connector, local) });
      return;
    }
    setTest({ status: 'testing' });
    try {
      const settings = buildSettings(connector, values);
      const secretsBlank = connector.fields.some((f) => f.secret && !settings[f.name]);
      let result: TestResult;
      if (editing && destination && !dirty) result = await api.testSavedDestination(destination.id);
      else if (editing && secretsBlank && connector.fields.some((f) => f.secret && destination?.settings[f.name])) {
        setTest({ status: 'not-run', message: 'To test changed settings, enter the password again (the stored one is never sent to the browser).' });
        return;
      } else result = await api.testConnection(connector.kind, settings);
      setTest({ status: 'done', result });
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) return;
      setErrors(fieldErrors(e));
      setTest({ status: 'error', message: errorMessage(e) });
    }
  };

  const submit = async (e: Event) => {
    e.preventDefault();
    const local = localProblems(connector, name, values, editing);
    if (countErrors(local)) {
      setErrors(local);
      setFormError(`Fix the ${countErrors(local) === 1 ? 'highlighted field' : `${countErrors(local)} highlighted fields`} first.`);
      focusFirstError();
      return;
    }
    setSaving(true);
    setFormError(null);
    try {
      const body = { name: name.trim(), type: connector.kind, settings: buildSettings(connector, values) };
      const saved = editing && destination ? await api.updateDestination(destination.id, body) : await api.createDestination(body);
      toast('success', editing ? `Destination “${saved.name}” saved.` : `Destination “${saved.name}” added. Now add a pipeline.`);
      navigate(href('destinations', saved.id));
    } catch (err) {
      const f = fieldErrors(err);
      if (err instanceof ApiError && (err.code === 'NameTaken' || (err.status === 409 && !countErrors(f)))) f.name = [err.message];
      setErrors(f);
      setFormError(errorMessage(err));
      focusFirstError();
    } finally {
      setSaving(false);
    }
  };

  const [url, setUrl] = useState('');
  const [urlNote, setUrlNote] = useState<{ ok: boolean; text: string } | null>(null);
  const fillFromUrl = (text: string) => {
    setUrl(text);
    if (!text.trim()) {
      setUrlNote(null);
      return;
    }
    const r = parseConnectionUrl(text);
    if (!r.ok) {
      setUrlNote({ ok: false, text: r.error });
      return;
    }
    if (r.parsed.kind !== connector.kind) {
      setUrlNote({ ok: false, text: `This is a URL for ${r.parsed.kind}; this form is for ${connector.label}.` });
      return;
    }
    const { values: next, filled } = applyUrl(connector, values, r.parsed);
    setValues(next);
    setDirty(true);
    setErrors((e) => Object.fromEntries(Object.entries(e).filter(([k]) => !connector.fields.some((f) => r.parsed.values[f.name] !== undefined && k === `settings.${f.name}`))));
    setUrlNote({ ok: true, text: filled.length ? `Filled in ${filled.join(', ')} from the URL.` : 'The URL names none of these fields.' });
  };

  const basic = connector.fields.filter((f) => !f.advanced);
  const advanced = connector.fields.filter((f) => f.advanced);
  const unplaced = Object.entries(errors).filter(([k]) => k !== 'name' && !connector.fields.some((f) => k === `settings.${f.name}` || k.startsWith(`settings.${f.name}.`)));

  return (
    <form class="card form" onSubmit={submit} noValidate aria-label={`${connector.label} connection`}>
      <Field label="Name" required errors={errorsAt(errors, 'name')} help="How this destination is called in Sluice.">
        {(id, describedBy, invalid) => (
          <input
            id={id}
            class="input"
            name="name"
            value={name}
            aria-describedby={describedBy}
            aria-invalid={invalid || undefined}
            aria-required="true"
            onInput={(e) => {
              setName((e.currentTarget as HTMLInputElement).value);
              setErrors(({ name: _n, ...rest }) => rest);
            }}
          />
        )}
      </Field>
      {connector.kind !== 'sqlite' && (
        <Field
          label="Connection URL (optional)"
          help={urlNote ? undefined : connector.kind === 'snowflake' ? 'Paste an account URL (https://<orgname>-<account>.snowflakecomputing.com) or a snowflake:// URL to fill in the fields below.' : `Paste a URL such as ${URL_EXAMPLES[connector.kind] ?? 'kind://user:password@host:port/database'} to fill in the fields below. It is not saved.`}
          errors={urlNote && !urlNote.ok ? [urlNote.text] : undefined}
        >
          {(fid, describedBy, invalid) => (
            <>
              <input
                id={fid}
                class="input mono"
                name="connection_url"
                type="text"
                autoComplete="off"
                spellcheck={false}
                placeholder={URL_EXAMPLES[connector.kind]}
                value={url}
                aria-describedby={describedBy}
                aria-invalid={invalid || undefined}
                onInput={(e) => fillFromUrl((e.currentTarget as HTMLInputElement).value)}
              />
              {urlNote?.ok && (
                <div class="help" role="status">
                  {urlNote.text}
                </div>
              )}
            </>
          )}
        </Field>
      )}
      <div class="form-grid">
        {basic.map((f) => (
          <SettingField key={f.name} field={f} value={values[f.name]} onChange={(v) => set(f.name, v)} errors={collect(errors, f.name)} editing={editing} hasStored={!!destination?.settings[f.name]} />
        ))}
      </div>
      {advanced.length > 0 && (
        <details class="advanced">
          <summary>Advanced settings</summary>
          <div class="form-grid">
            {advanced.map((f) => (
              <SettingField key={f.name} field={f} value={values[f.name]} onChange={(v) => set(f.name, v)} errors={collect(errors, f.name)} editing={editing} hasStored={!!destination?.settings[f.name]} />
            ))}
          </div>
        </details>
      )}
      {unplaced.length > 0 && <FieldErrorsText errors={unplaced.flatMap(([k, v]) => v.map((m) => `${k}: ${m}`))} />}
      <div class="test-outcome" aria-live="polite">
        <TestOutcome state={test} />
      </div>
      {formError && <Alert>{formError}</Alert>}
      <div class="form-actions">
        <button type="button" class="button" onClick={runTest} disabled={test.status === 'testing'}>
          {test.status === 'testing' ? (
            <>
              <Spinner label="Testing" /> Testing…
            </>
          ) : (
            'Test connection'
          )}
        </button>
        <span class="spacer" />
        <a class="button ghost" href={editing && destination ? href('destinations', destination.id) : href('destinations', 'new')}>
          Cancel
        </a>
        <button type="submit" class="button primary" disabled={saving}>
          {saving ? 'Saving…' : editing ? 'Save' : 'Add'}
        </button>
      </div>
    </form>
  );
}

function collect(errors: FieldErrors, field: string): string[] {
  const out: string[] = [];
  for (const [k, v] of Object.entries(errors)) if (k === `settings.${field}` || k.startsWith(`settings.${field}.`)) out.push(...v);
  return out;
}

function focusFirstError() {
  window.requestAnimationFrame(() => document.querySelector<HTMLElement>('[aria-invalid="true"]')?.focus());
}

function TestOutcome({ state }: { state: TestState }) {
  if (state.status === 'idle' || state.status === 'testing') return null;
  if (state.status === 'not-run') return <Alert kind="warning" title="Connection not tested">{state.message}</Alert>;
  if (state.status === 'error') return <Alert title="Connection test failed">{state.message}</Alert>;
  const r = state.result;
  if (r.ok) {
    return (
      <Alert kind="success" title="Connection succeeded">
        {r.server_version ? <>Server version: {r.server_version}</> : 'Sluice connected to the database.'}
      </Alert>
    );
  }
  return (
    <Alert title="Connection failed">
      {r.error.message}
      {r.error.code && <span class="muted small"> ({r.error.code})</span>}
    </Alert>
  );
}

interface SettingFieldProps {
  field: ConnectorField;
  value: FormValues[string];
  onChange: (v: FormValues[string]) => void;
  errors: string[];
  editing: boolean;
  hasStored: boolean;
}

function SettingField({ field: f, value, onChange, errors, editing, hasStored }: SettingFieldProps) {
  const [reveal, setReveal] = useState(false);
  const required = f.required && !(editing && f.secret);
  const defaultHint = f.default !== undefined && f.default !== null && typeof f.default !== 'object' ? `Default: ${String(f.default)}` : undefined;
  if (isTlsField(f)) {
    const tls = value as TlsValue;
    const option = f.options?.find((o) => o.value === tls.mode);
    return (
      <div class="field-pair wide">
        <Field label={f.label} help={option?.help ?? f.help} errors={errors}>
          {(id, describedBy, invalid) => (
            <select id={id} class="input" name={f.name} value={tls.mode} aria-describedby={describedBy} aria-invalid={invalid || undefined} onChange={(e) => onChange({ ...tls, mode: (e.currentTarget as HTMLSelectElement).value })}>
              {(f.options ?? [{ value: 'disable', label: 'Disabled (no TLS)' }, { value: 'require', label: 'Required' }, { value: 'verify', label: 'Verify certificate' }]).map((o) => (
                <option key={o.value} value={o.value}>
                  {o.label}
                </option>
              ))}
            </select>
          )}
        </Field>
        {tls.mode === 'verify' && (
          <Field label="CA certificate (PEM)" help="The certificate of the authority that signed the server's certificate. Leave blank to use the public web CAs.">
            {(id, describedBy) => (
              <textarea id={id} class="input mono" rows={5} name="ca_cert" placeholder="-----BEGIN CERTIFICATE-----" aria-describedby={describedBy} value={tls.ca_cert} onInput={(e) => onChange({ ...tls, ca_cert: (e.currentTarget as HTMLTextAreaElement).value })} />
            )}
          </Field>
        )}
      </div>
    );
  }
  const help = [f.help, defaultHint && !f.help?.includes('default') ? defaultHint : undefined].filter(Boolean).join(' ');
  if (f.type === 'boolean') {
    return (
      <div class="field checkbox-field">
        <label>
          <input type="checkbox" name={f.name} checked={value === true} onChange={(e) => onChange((e.currentTarget as HTMLInputElement).checked)} /> {f.label}
        </label>
        {help && <div class="help">{help}</div>}
        <FieldErrorsText errors={errors} />
      </div>
    );
  }
  const text = (value as string) ?? '';
  const secretPlaceholder = editing && f.secret && hasStored ? '•••••••• (unchanged — type to replace)' : undefined;
  return (
    <Field label={f.label} required={required} help={help || undefined} errors={errors} class={f.type === 'text' ? 'wide' : undefined}>
      {(id, describedBy, invalid) =>
        f.type === 'text' ? (
          <textarea
            id={id}
            class={classNames('input mono', f.secret && !reveal && text && 'masked')}
            name={f.name}
            rows={5}
            value={text}
            placeholder={secretPlaceholder}
            aria-describedby={describedBy}
            aria-invalid={invalid || undefined}
            aria-required={required || undefined}
            onInput={(e) => onChange((e.currentTarget as HTMLTextAreaElement).value)}
          />
        ) : (
          <div class={f.secret ? 'input-with-button' : undefined}>
            <input
              id={id}
              class="input"
              name={f.name}
              type={(f.secret && !reveal ? 'password' : f.type === 'integer' ? 'number' : 'text') as 'text'}
              inputMode={f.type === 'integer' ? 'numeric' : 'text'}
              min={f.type === 'integer' ? 0 : undefined}
              autocomplete={f.secret ? 'new-password' : 'off'}
              spellcheck={false}
              value={text}
              placeholder={secretPlaceholder ?? (typeof f.default === 'string' || typeof f.default === 'number' ? String(f.default) : undefined)}
              aria-describedby={describedBy}
              aria-invalid={invalid || undefined}
              aria-required={required || undefined}
              onInput={(e) => onChange((e.currentTarget as HTMLInputElement).value)}
            />
            {f.secret && (
              <button type="button" class="button small ghost" aria-pressed={reveal} aria-label={reveal ? `Hide ${f.label}` : `Show ${f.label}`} onClick={() => setReveal(!reveal)}>
                {reveal ? 'Hide' : 'Show'}
              </button>
            )}
          </div>
        )
      }
    </Field>
  );
}
