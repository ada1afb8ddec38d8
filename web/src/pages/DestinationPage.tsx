// A destination's page: its connection, its pipelines in a table with the seed's columns —
// Pipeline, Filters, Enable, Run now, Schedule, Manage and ⋮ More — and the source pipelines that feed
// what those pipelines read (lineage).

import { useEffect, useRef, useState } from 'preact/hooks';
import { useAccess } from '../access';
import { api, ApiError, errorMessage, type Connector, type Destination, type Lineage, type Pipeline, type Run, type Schedule, type TestResult } from '../api';
import { Alert, DeleteDialog, Dialog, EmptyState, ErrorAlert, Field, HiddenHeader, Loading, Menu, PageHeader, ProgressBar, Spinner, StatusBadge, Switch, useToast } from '../components/ui';
import { useAsync, useInterval, useTitle } from '../hooks';
import { connectorMonogram, describeSettings } from '../lib/connectors';
import { summarizeFilter } from '../lib/filter';
import { RECONCILE_HELP } from '../lib/pipeline';
import { countsSummary } from '../lib/counts';
import { browserTimeZone, cronProblem, formatNumber, INTERVALS, nextRunInfo, ON_CHANGE, relativeTime, scheduleLabel, scheduleShort, timeZones } from '../lib/util';
import { href, navigate } from '../router';

interface Data {
  destination: Destination;
  connector?: Connector;
  pipelines: Pipeline[];
}

export function DestinationPage({ id }: { id: string }) {
  const access = useAccess();
  const { data, error, loading, setData } = useAsync<Data>(async () => {
    const [destination, connectors, pipelines] = await Promise.all([api.getDestination(id), api.connectors().catch(() => []), api.listPipelines(id)]);
    return { destination, connector: connectors.find((c) => c.kind === destination.type), pipelines };
  }, [id]);
  useTitle(data?.destination.name ?? 'Destination');
  const [deleting, setDeleting] = useState(false);
  const [test, setTest] = useState<{ busy: boolean; result?: TestResult; error?: string }>({ busy: false });

  const replacePipeline = (p: Pipeline) => setData((d) => ({ ...d!, pipelines: d!.pipelines.map((x) => (x.id === p.id ? p : x)) }));
  const removePipeline = (pid: string) => setData((d) => ({ ...d!, pipelines: d!.pipelines.filter((x) => x.id !== pid) }));

  const testSaved = async () => {
    setTest({ busy: true });
    try {
      setTest({ busy: false, result: await api.testSavedDestination(id) });
    } catch (e) {
      setTest({ busy: false, error: errorMessage(e) });
    }
  };

  if (error && !data) {
    return (
      <div class="page">
        <PageHeader crumbs={[{ label: 'Destinations', href: href('destinations') }, { label: id }]} title="Destination" />
        <ErrorAlert error={error} />
      </div>
    );
  }
  if (loading && !data) return <div class="page"><Loading /></div>;
  if (!data) return null;
  const d = data.destination;
  return (
    <div class="page">
      <PageHeader
        crumbs={[{ label: 'Destinations', href: href('destinations') }, { label: d.name }]}
        title={
          <span class="title-with-icon">
            <span class={`monogram mono-${d.type}`} aria-hidden="true">
              {connectorMonogram(d.type)}
            </span>
            {d.name}
          </span>
        }
        subtitle={
          <>
            {data.connector?.label ?? d.type} · <span class="mono">{describeSettings(d.type, d.settings) || '—'}</span>
          </>
        }
        actions={
          <>
            {access.can('edit') && (
            <button type="button" class="button" onClick={testSaved} disabled={test.busy}>
              {test.busy ? (
                <>
                  <Spinner label="Testing" /> Testing…
                </>
              ) : (
                'Test connection'
              )}
            </button>
            )}
            {access.can('admin') && (
              <>
                <a class="button" href={href('destinations', id, 'edit')}>
                  Edit connection
                </a>
                <button type="button" class="button danger-outline" onClick={() => setDeleting(true)}>
                  Delete
                </button>
              </>
            )}
          </>
        }
      />
      <div aria-live="polite">
        {test.error && <Alert title="Connection test failed">{test.error}</Alert>}
        {test.result &&
          (test.result.ok ? (
            <Alert kind="success" title="Connection succeeded">
              {test.result.server_version ? `Server version: ${test.result.server_version}` : 'Sluice connected to the database.'}
            </Alert>
          ) : (
            <Alert title="Connection failed">{test.result.error.message}</Alert>
          ))}
      </div>

      <section class="card section" aria-labelledby="pipelines-title">
        <div class="section-head">
          <div>
            <h2 id="pipelines-title">Pipelines</h2>
            <p class="section-desc">Each pipeline exports the profiles that match its filter to one table. Several pipelines may write to the same database or the same table.</p>
          </div>
          <div class="section-actions">
            {access.can('edit') && (
              <a class="button primary" href={href('destinations', id, 'pipelines', 'new')}>
                Add pipeline…
              </a>
            )}
          </div>
        </div>
        {data.pipelines.length === 0 ? (
          <EmptyState title="No pipelines yet">
            <p>A pipeline picks an audience with a filter, maps profile properties onto the columns of an existing table and keeps it up to date.</p>
            {access.can('edit') && (
              <a class="button primary" href={href('destinations', id, 'pipelines', 'new')}>
                Add pipeline…
              </a>
            )}
          </EmptyState>
        ) : (
          <div class="table-wrap">
            <table class="table pipelines-table">
              <thead>
                <tr>
                  <th scope="col">Pipeline</th>
                  <th scope="col">Filters</th>
                  <th scope="col">Enable</th>
                  <th scope="col">Run now</th>
                  <th scope="col">Schedule</th>
                  <th scope="col">Manage</th>
                  <HiddenHeader label="More" />
                </tr>
              </thead>
              <tbody>
                {data.pipelines.map((p) => (
                  <PipelineRow key={p.id} pipeline={p} onChange={replacePipeline} onDeleted={() => removePipeline(p.id)} />
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>

      {data.pipelines.length > 0 && <LineageSection destination={id} pipelines={data.pipelines} />}

      {deleting && (
        <DeleteDialog
          title={`Delete ${d.name}?`}
          confirmLabel="Delete destination"
          onClose={() => setDeleting(false)}
          remove={() => api.deleteDestination(id)}
          done={`Destination “${d.name}” deleted.`}
          after={() => navigate(href('destinations'))}
        >
          <p>
            Sluice forgets the connection settings of <strong>{d.name}</strong>; the database is not touched.
            {data.pipelines.length > 0 && ` It still has ${data.pipelines.length} pipeline${data.pipelines.length === 1 ? '' : 's'}: delete them first.`}
          </p>
        </DeleteDialog>
      )}
      {error && data && <ErrorAlert error={error} />}
    </div>
  );
}

function isActive(r: Run | null | undefined): boolean {
  return !!r && (r.status === 'queued' || r.status === 'running');
}

function runOutcome(r: Run): string {
  return countsSummary(r.counts);
}

function PipelineRow({ pipeline: p, onChange, onDeleted }: { pipeline: Pipeline; onChange: (p: Pipeline) => void; onDeleted: () => void }) {
  const access = useAccess();
  const toast = useToast();
  const [run, setRun] = useState<Run | null>(p.last_run && isActive(p.last_run) ? p.last_run : null);
  const [runId, setRunId] = useState<string | null>(p.running ?? (p.last_run && isActive(p.last_run) ? p.last_run.id : null));
  const [starting, setStarting] = useState(false);
  const [busy, setBusy] = useState(false);
  const [deleting, setDeleting] = useState(false);
  const [cron, setCron] = useState(false);
  // Keeps the "next run in …" text current between answers.
  const [now, setNow] = useState(Date.now());
  useInterval(
    () => {
      const t = Date.now();
      setNow(t);
      // Once the scheduled time has passed, ask again: the run started (or the time moved on).
      if (p.next_run_at && new Date(p.next_run_at).getTime() < t - 5_000 && runId === null) {
        api.getPipeline(p.id).then(
          (fresh) => {
            if (!mounted.current) return;
            onChange({ ...fresh, last_run: fresh.last_run ?? p.last_run });
            if (fresh.running) setRunId(fresh.running);
          },
          () => {},
        );
      }
    },
    20_000,
    p.schedule !== null && !!p.next_run_at,
  );
  const polling = runId !== null;
  const mounted = useRef(true);
  useEffect(() => () => void (mounted.current = false), []);

  const poll = async () => {
    if (!runId) return;
    try {
      const r = await api.getRun(runId);
      if (!mounted.current) return;
      setRun(r);
      if (!isActive(r)) {
        setRunId(null);
        const text = `${p.name}: run ${r.status} — ${runOutcome(r)}.`;
        toast(r.status === 'succeeded' ? 'success' : 'error', r.message && r.status !== 'succeeded' ? `${text} ${r.message}` : text);
        const fresh = await api.getPipeline(p.id).catch(() => null);
        if (fresh && mounted.current) onChange({ ...fresh, last_run: fresh.last_run ?? r });
        else onChange({ ...p, running: null, last_run: r });
        setRun(null);
      }
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) setRunId(null);
    }
  };
  useInterval(poll, 1000, polling);
  useEffect(() => {
    if (runId) void poll();
  }, [runId]);

  const runNow = async (mode: 'normal' | 'reconcile' = 'normal') => {
    setStarting(true);
    try {
      const { id } = await api.startRun(p.id, mode);
      setRun(null);
      setRunId(id);
    } catch (e) {
      toast('error', errorMessage(e));
    } finally {
      setStarting(false);
    }
  };

  const patch = async (changes: Partial<Pipeline>, okText: string) => {
    setBusy(true);
    const before = p;
    onChange({ ...p, ...changes });
    try {
      const saved = await api.patchPipeline(p.id, changes);
      onChange({ ...saved, last_run: saved.last_run ?? p.last_run });
      toast('success', okText);
    } catch (e) {
      onChange(before);
      toast('error', `${p.name}: ${errorMessage(e)}`);
    } finally {
      setBusy(false);
    }
  };

  const setSchedule = (s: Schedule) => patch({ schedule: s }, `${p.name}: schedule ${s === null ? 'turned off' : `set to ${scheduleLabel(s).toLowerCase()}`}.`);
  const summary = p.filter_summary && p.filter_summary.trim() ? p.filter_summary : summarizeFilter(p.filter);
  const running = polling || starting;
  const last = p.last_run;
  const isCron = p.schedule !== null && typeof p.schedule === 'object';
  const next = nextRunInfo(p, now);

  return (
    <tr>
      <td class="pipeline-cell">
        <a class="strong-link" href={href('pipelines', p.id, 'runs')} title="Runs and monitoring">
          {p.name}
        </a>
        {p.description && <div class="muted small">{p.description}</div>}
        <div class="small meta">
          <span class="mono">{p.table}</span>
          {last && !running && (
            <>
              {' · '}
              <a href={href('pipelines', p.id, 'runs')} class="quiet-link">
                <StatusBadge status={last.status} /> {relativeTime(last.finished_at ?? last.started_at)}
              </a>
              <span class="muted"> · {runOutcome(last)}</span>
            </>
          )}
        </div>
      </td>
      <td class="filters-cell">
        <span class={summary === 'All profiles' ? 'muted' : undefined}>{summary}</span>
      </td>
      <td>
        <Switch checked={p.enabled} disabled={busy || !access.can('edit')} label={`Enable ${p.name}`} onChange={(v) => patch({ enabled: v }, `${p.name} ${v ? 'enabled' : 'disabled'}.`)} />
      </td>
      <td class="run-cell">
        {running ? (
          <div class="run-progress" aria-live="polite">
            <div class="small">
              <Spinner label="Running" /> {run?.status === 'queued' ? 'Queued…' : 'Running…'}{' '}
              {run?.progress && (
                <span class="muted">
                  {formatNumber(run.progress.processed)}
                  {run.progress.total ? ` / ${formatNumber(run.progress.total)}` : ''}
                </span>
              )}
            </div>
            <ProgressBar value={run?.progress?.processed ?? 0} total={run?.progress?.total ?? null} label={`Progress of ${p.name}`} />
          </div>
        ) : (
          <>
            <button type="button" class="button small" onClick={() => runNow()} disabled={!p.enabled || !access.can('edit')} title={access.whyNot('edit') ?? (p.enabled ? 'Run the export now, one time' : 'Enable the pipeline to run it')} aria-label={`Run ${p.name} now`}>
              ▶ Run now
            </button>{' '}
            <button type="button" class="button small" onClick={() => runNow('reconcile')} disabled={!p.enabled || !access.can('edit')} title={access.whyNot('edit') ?? (p.enabled ? RECONCILE_HELP : 'Enable the pipeline to run it')} aria-label={`Reconcile ${p.name}`}>
              Reconcile
            </button>
          </>
        )}
      </td>
      <td>
        <Menu
          label={`Schedule of ${p.name}: ${scheduleLabel(p.schedule)}`}
          button={
            <>
              <span class={p.schedule === null ? 'muted' : undefined}>{p.schedule === null ? 'Off' : scheduleShort(p.schedule)}</span> ▾
            </>
          }
          buttonClass="button small schedule-button"
          align="left"
          disabled={busy || !access.can('edit')}
          items={[
            { label: 'Off', checked: p.schedule === null, onSelect: () => setSchedule(null) },
            { label: ON_CHANGE.label, checked: p.schedule === ON_CHANGE.value, onSelect: () => setSchedule(ON_CHANGE.value as Schedule) },
            ...INTERVALS.map((i) => ({ label: i.label, checked: p.schedule === i.value || (i.value === '24h' && p.schedule === '1d'), onSelect: () => setSchedule(i.value as Schedule) })),
            { label: isCron ? `Custom: ${scheduleShort(p.schedule)}…` : 'Custom (cron)…', checked: isCron, separatorBefore: true, onSelect: () => setCron(true) },
          ]}
        />
        {next && (
          <div class="muted small next-run">
            {next.exact ? (
              <time dateTime={p.next_run_at ?? undefined} title={next.exact} aria-label={`${next.text} (${next.exact})`} tabIndex={0}>
                {next.text}
              </time>
            ) : (
              next.text
            )}
          </div>
        )}
      </td>
      <td>
        <a class="button small" href={href('pipelines', p.id)} aria-label={`Manage ${p.name}`}>
          Manage
        </a>
      </td>
      <td>
        <Menu
          label={`More actions for ${p.name}`}
          button="⋮"
          buttonClass="icon-button bordered"
          items={[
            { label: 'Runs and monitoring', onSelect: () => navigate(href('pipelines', p.id, 'runs')) },
            ...(access.can('edit') ? [{ label: 'Delete…', danger: true, separatorBefore: true, onSelect: () => setDeleting(true) }] : []),
          ]}
        />
        {deleting && (
          <DeleteDialog
            title={`Delete pipeline ${p.name}?`}
            confirmLabel="Delete pipeline"
            onClose={() => setDeleting(false)}
            remove={() => api.deletePipeline(p.id)}
            done={`Pipeline “${p.name}” deleted.`}
            after={onDeleted}
          >
            <p>
              The pipeline stops exporting to <span class="mono">{p.table}</span> and its run history is removed. Rows already written to the table stay there.
            </p>
          </DeleteDialog>
        )}
        {cron && (
          <CronDialog
            name={p.name}
            initial={isCron ? (p.schedule as { cron: string; timezone: string }) : { cron: '0 3 * * *', timezone: browserTimeZone() }}
            onClose={() => setCron(false)}
            onSave={async (s) => {
              const saved = await api.patchPipeline(p.id, { schedule: s });
              onChange({ ...saved, last_run: saved.last_run ?? p.last_run });
              toast('success', `${p.name}: schedule set to ${scheduleLabel(s)}.`);
            }}
          />
        )}
      </td>
    </tr>
  );
}

export function CronDialog({ name, initial, onClose, onSave }: { name: string; initial: { cron: string; timezone: string }; onClose: () => void; onSave: (s: { cron: string; timezone: string }) => Promise<void> }) {
  const [expr, setExpr] = useState(initial.cron);
  const [tz, setTz] = useState(initial.timezone);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const problem = cronProblem(expr);
  const zones = timeZones();
  const save = async () => {
    if (problem) return;
    setBusy(true);
    setError(null);
    try {
      await onSave({ cron: expr.trim(), timezone: tz });
      onClose();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  const fields = error instanceof ApiError ? error.fields : {};
  return (
    <Dialog
      title={`Custom schedule for ${name}`}
      onClose={onClose}
      footer={
        <>
          <button type="button" class="button" onClick={onClose}>
            Cancel
          </button>
          <button type="button" class="button primary" onClick={save} disabled={busy || !!problem}>
            Save schedule
          </button>
        </>
      }
    >
      <Field label="Cron expression" help="minute hour day-of-month month day-of-week — for example 0 3 * * * runs every day at 03:00." errors={[...(problem && expr ? [problem] : []), ...(fields['schedule.cron'] ?? []), ...(fields.schedule ?? [])]}>
        {(id, describedBy, invalid) => <input id={id} class="input mono" data-autofocus value={expr} aria-describedby={describedBy} aria-invalid={invalid || undefined} onInput={(e) => setExpr((e.currentTarget as HTMLInputElement).value)} />}
      </Field>
      <Field label="Time zone" errors={fields['schedule.timezone']}>
        {(id, describedBy, invalid) => (
          <select id={id} class="input" value={tz} aria-describedby={describedBy} aria-invalid={invalid || undefined} onChange={(e) => setTz((e.currentTarget as HTMLSelectElement).value)}>
            {!zones.includes(tz) && <option value={tz}>{tz}</option>}
            {zones.map((z) => (
              <option key={z} value={z}>
                {z}
              </option>
            ))}
          </select>
        )}
      </Field>
      {error !== null && <Alert>{errorMessage(error)}</Alert>}
    </Dialog>
  );
}

/** Which source pipelines feed the profile properties each export pipeline reads. Loaded on its own: the
 * page works without it. */
export function LineageSection({ destination, pipelines }: { destination: string; pipelines: Pipeline[] }) {
  // Reloaded when a pipeline is added, removed or changed on the page.
  const key = pipelines.map((p) => `${p.id}:${p.updated_at}`).join(',');
  const { data, error } = useAsync<Lineage>(() => api.destinationLineage(destination), [destination, key]);
  return (
    <section class="card section" aria-labelledby="lineage-title">
      <div class="section-head">
        <div>
          <h2 id="lineage-title">Fed by</h2>
          <p class="section-desc">The source pipelines that write the profile properties each pipeline's filter and mapping read.</p>
        </div>
      </div>
      {error && !data && <ErrorAlert error={error} />}
      {!data && !error && <Loading />}
      {data && (
        <ul class="lineage-list">
          {data.pipelines.map((p) => (
            <li key={p.id} data-pipeline={p.id}>
              <strong>{p.name}</strong> <span class="muted">→ {p.table}</span>
              {p.reads === null && <div class="muted">Its transformation is a script, which may read any property: every source may feed it.</div>}
              {p.sources.length === 0 ? (
                <div class="muted">No source pipeline writes what it reads.</div>
              ) : (
                <ul>
                  {p.sources.map((s) => (
                    <li key={s.id}>
                      {s.name}
                      {!s.enabled && <span class="muted"> (disabled)</span>}
                      {': '}
                      {s.properties === null ? (
                        <span class="muted">{p.reads === null ? 'may write what it reads' : 'a script: may write what it reads'}</span>
                      ) : (
                        <span class="mono">{s.properties.join(', ')}</span>
                      )}
                    </li>
                  ))}
                </ul>
              )}
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}
