// Source pipelines: the list (name, connection, what is read, change mode, schedule, last run, enable,
// run now) and one source's run history with counts and errors grouped by message, built from the same
// pieces as an export pipeline's runs page.

import { useEffect, useState } from 'preact/hooks';
import { useAccess } from '../access';
import { api, errorMessage, type Destination, type Run, type Source } from '../api';
import { DeleteDialog, EmptyState, Menu, ErrorAlert, HiddenHeader, Loading, PageHeader, Section, Spinner, StatusBadge, Switch, useToast } from '../components/ui';
import { useInterval, useTitle } from '../hooks';
import { changesLabel, sourceReads } from '../lib/source';
import { formatDuration, formatNumber, scheduleLabel, triggerLabel } from '../lib/util';
import { href, navigate } from '../router';
import { active, ErrorTable, groupErrors, pastTime, RunDetails, runDuration, runTimeLabel, Stat } from './Runs';

export function SourcesPage() {
  const access = useAccess();
  const toast = useToast();
  const [sources, setSources] = useState<Source[] | null>(null);
  const [connections, setConnections] = useState<Map<string, Destination>>(new Map());
  const [error, setError] = useState<unknown>(null);
  const [deleting, setDeleting] = useState<Source | null>(null);
  const [now, setNow] = useState(Date.now());
  useTitle('Sources');

  const load = async () => {
    try {
      const [s, d] = await Promise.all([api.listSources(), api.listDestinations()]);
      setSources(s);
      setConnections(new Map(d.map((x) => [x.id, x])));
      setNow(Date.now());
      setError(null);
    } catch (e) {
      setError(e);
    }
  };
  useEffect(() => void load(), []);
  const anyActive = (sources ?? []).some((s) => !!s.running);
  useInterval(() => void load(), 1500, anyActive);

  const replace = (s: Source) => setSources((old) => (old ?? []).map((x) => (x.id === s.id ? s : x)));
  const setEnabled = async (s: Source, enabled: boolean) => {
    try {
      replace(await api.patchSource(s.id, { enabled }));
    } catch (e) {
      toast('error', errorMessage(e));
    }
  };
  const runNow = async (s: Source) => {
    try {
      await api.startSourceRun(s.id);
      toast('info', `${s.name} is running.`);
      await load();
    } catch (e) {
      toast('error', errorMessage(e));
    }
  };

  return (
    <div class="page">
      <PageHeader
        title="Sources"
        subtitle="Source pipelines read a table or query of a connection into the profile store, on a schedule or on demand."
        actions={
          <a class={access.can('edit') ? 'button primary' : 'button primary disabled'} href={access.can('edit') ? href('sources', 'new') : undefined} aria-disabled={!access.can('edit') || undefined} title={access.whyNot('edit') ?? undefined}>
            Add source
          </a>
        }
      />
      {error !== null && <ErrorAlert error={error} />}
      {!sources && !error && <Loading />}
      {sources && sources.length === 0 && (
        <EmptyState title="No source pipelines yet">
          <p>Add one to load profiles from a table or a SELECT query of a connection (the same connections as destinations).</p>
        </EmptyState>
      )}
      {sources && sources.length > 0 && (
        <div class="table-wrap card">
          <table class="table sources-table">
            <thead>
              <tr>
                <th scope="col">Source</th>
                <th scope="col">Connection</th>
                <th scope="col">Reads</th>
                <th scope="col">Changes</th>
                <th scope="col">Schedule</th>
                <th scope="col">Last run</th>
                <th scope="col">Enabled</th>
                <HiddenHeader label="Actions" />
              </tr>
            </thead>
            <tbody>
              {sources.map((s) => {
                const conn = connections.get(s.connection);
                const last = s.last_run;
                return (
                  <tr key={s.id} data-source={s.name}>
                    <td>
                      <a class="strong" href={href('sources', s.id)}>
                        {s.name}
                      </a>
                      {s.description && <div class="muted small">{s.description}</div>}
                    </td>
                    <td>{conn ? <a href={href('destinations', conn.id)}>{conn.name}</a> : <span class="mono">{s.connection}</span>}</td>
                    <td class={s.query ? 'mono small reads-cell' : 'mono small reads-cell'} title={s.query ?? s.table ?? undefined}>
                      {s.query ? 'query: ' : ''}
                      {sourceReads(s)}
                    </td>
                    <td>{changesLabel(s.changes)}</td>
                    <td>{scheduleLabel(s.schedule ?? null)}</td>
                    <td>
                      {s.running ? (
                        <span>
                          <Spinner label="Running" /> running
                        </span>
                      ) : last ? (
                        <a href={href('sources', s.id, 'runs')} class="row gap-s" title={`${formatNumber(last.counts.read)} read, ${formatNumber(last.counts.inserted)} created, ${formatNumber(last.counts.updated)} updated, ${formatNumber(last.counts.failed + last.counts.transform_failed)} failed`}>
                          <StatusBadge status={last.status} /> {pastTime(last.finished_at ?? last.started_at ?? last.queued_at, now)}
                        </a>
                      ) : (
                        <span class="muted">never</span>
                      )}
                    </td>
                    <td>
                      <Switch checked={s.enabled ?? true} onChange={(v) => void setEnabled(s, v)} label={`Enable ${s.name}`} disabled={!access.can('edit')} />
                    </td>
                    <td class="nowrap actions-cell">
                      <button type="button" class="button small" onClick={() => void runNow(s)} disabled={!access.can('edit') || !(s.enabled ?? true) || !!s.running} title={access.whyNot('edit') ?? ((s.enabled ?? true) ? undefined : 'Enable the source to run it')} aria-label={`Run ${s.name} now`}>
                        ▶ Run now
                      </button>{' '}
                      <Menu
                        label={`More actions for ${s.name}`}
                        button="⋮"
                        buttonClass="icon-button bordered"
                        items={[
                          { label: 'Runs', onSelect: () => navigate(href('sources', s.id, 'runs')) },
                          { label: 'Manage', onSelect: () => navigate(href('sources', s.id)) },
                          ...(access.can('edit') ? [{ label: 'Delete…', danger: true, separatorBefore: true, onSelect: () => setDeleting(s) }] : []),
                        ]}
                      />
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
      {deleting && (
        <DeleteDialog
          title={`Delete ${deleting.name}?`}
          confirmLabel="Delete source"
          onClose={() => setDeleting(null)}
          remove={() => api.deleteSource(deleting.id)}
          done={`Source “${deleting.name}” deleted.`}
          after={async () => {
            setDeleting(null);
            await load();
          }}
        >
          <p>The source's runs are deleted with it; the profiles it wrote stay.</p>
        </DeleteDialog>
      )}
    </div>
  );
}

/** One source's run history: run now, cancel, counts of each run and the errors of all of them grouped. */
export function SourceRunsPage({ id }: { id: string }) {
  const access = useAccess();
  const toast = useToast();
  const [source, setSource] = useState<Source | null>(null);
  const [runs, setRuns] = useState<Run[] | null>(null);
  const [next, setNext] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [selected, setSelected] = useState<string | null>(null);
  const [starting, setStarting] = useState(false);
  const [cancelling, setCancelling] = useState<Set<string>>(new Set());
  const [now, setNow] = useState(Date.now());
  useTitle(source ? `Runs of ${source.name}` : 'Runs');

  const load = async () => {
    try {
      const [s, page] = await Promise.all([api.getSource(id), api.listSourceRuns(id, { limit: 50 })]);
      setNow(Date.now());
      setSource(s);
      setRuns((old) => [...page.runs, ...(old ?? []).filter((o) => !page.runs.some((r) => r.id === o.id) && !active(o) && o.queued_at < (page.runs[page.runs.length - 1]?.queued_at ?? ''))]);
      setNext((n) => n ?? page.next);
      setError(null);
    } catch (e) {
      setError(e);
    }
  };
  useEffect(() => {
    setRuns(null);
    setSource(null);
    void load();
  }, [id]);
  const anyActive = (runs ?? []).some(active) || !!source?.running;
  useInterval(() => void load(), 1000, anyActive);

  const runNow = async () => {
    setStarting(true);
    try {
      const r = await api.startSourceRun(id);
      setSelected(r.id);
      await load();
    } catch (e) {
      toast('error', errorMessage(e));
    } finally {
      setStarting(false);
    }
  };
  const cancel = async (run: Run) => {
    setCancelling((c) => new Set(c).add(run.id));
    try {
      await api.cancelRun(run.id);
      toast('info', run.status === 'queued' ? 'The queued run is cancelled.' : 'Cancelling the run: it stops at the end of the current page.');
      await load();
    } catch (e) {
      toast('error', errorMessage(e));
    } finally {
      setCancelling((c) => {
        const n = new Set(c);
        n.delete(run.id);
        return n;
      });
    }
  };
  const loadMore = async () => {
    if (!next) return;
    try {
      const page = await api.listSourceRuns(id, { limit: 50, before: next });
      setRuns((old) => [...(old ?? []), ...page.runs.filter((r) => !(old ?? []).some((o) => o.id === r.id))]);
      setNext(page.next);
    } catch (e) {
      toast('error', errorMessage(e));
    }
  };

  if (error && !runs) {
    return (
      <div class="page">
        <PageHeader crumbs={[{ label: 'Sources', href: href('sources') }, { label: 'Runs' }]} title="Runs" />
        <ErrorAlert error={error} />
      </div>
    );
  }
  if (!runs || !source) return <div class="page"><Loading /></div>;
  const sel = runs.find((r) => r.id === selected) ?? runs[0];
  const enabled = source.enabled ?? true;
  const totals = runs
    .filter((r) => !active(r))
    .reduce((a, r) => ({ written: a.written + r.counts.inserted + r.counts.updated, failed: a.failed + r.counts.failed + r.counts.transform_failed }), { written: 0, failed: 0 });

  return (
    <div class="page">
      <PageHeader
        crumbs={[{ label: 'Sources', href: href('sources') }, { label: source.name }]}
        title={source.name}
        subtitle={
          <>
            Reads <span class="mono">{sourceReads(source)}</span> · {changesLabel(source.changes)} · {scheduleLabel(source.schedule ?? null)}
            {!enabled && ' · disabled'}
          </>
        }
        actions={
          <>
            <a class="button" href={href('sources', id)}>
              Manage
            </a>
            <button type="button" class="button primary" onClick={() => void runNow()} disabled={!enabled || anyActive || starting || !access.can('edit')} title={access.whyNot('edit') ?? (enabled ? undefined : 'Enable the source to run it')}>
              {anyActive ? (
                <>
                  <Spinner label="Running" /> Running…
                </>
              ) : (
                '▶ Run now'
              )}
            </button>
          </>
        }
      />
      {error !== null && <ErrorAlert error={error} />}
      {runs.length === 0 ? (
        <EmptyState title="No runs yet">
          <p>{enabled ? 'Run the source now, or wait for its schedule.' : 'Enable the source, then run it.'}</p>
        </EmptyState>
      ) : (
        <>
          <div class="stats">
            <Stat label="Runs shown" value={formatNumber(runs.length)} />
            <Stat label="Profiles written" value={formatNumber(totals.written)} />
            <Stat label="Rows failed" value={formatNumber(totals.failed)} warn={totals.failed > 0} />
            <Stat label="Last run" value={pastTime(runs[0].finished_at ?? runs[0].started_at ?? runs[0].queued_at, now)} />
          </div>
          {sel && <RunDetails run={sel} now={now} onCancel={cancel} cancelling={cancelling.has(sel.id)} source />}
          <Section title="Run history" description="Newest first. Select a run to see its counts and errors.">
            <div class="table-wrap">
              <table class="table runs-table">
                <thead>
                  <tr>
                    <th scope="col">Status</th>
                    <th scope="col">Started</th>
                    <th scope="col">Trigger</th>
                    <th scope="col" class="num">Read</th>
                    <th scope="col" class="num">Created</th>
                    <th scope="col" class="num">Updated</th>
                    <th scope="col" class="num">Unchanged</th>
                    <th scope="col" class="num">Deleted</th>
                    <th scope="col" class="num">Failed</th>
                    <HiddenHeader label="Actions" />
                  </tr>
                </thead>
                <tbody>
                  {runs.map((r) => {
                    const failed = r.counts.failed + r.counts.transform_failed;
                    return (
                      <tr key={r.id} class={r.id === sel?.id ? 'selected' : undefined}>
                        <td>
                          <button type="button" class="link-button" aria-pressed={r.id === sel?.id} onClick={() => setSelected(r.id)} aria-label={`Show run ${r.id} (${r.status})`}>
                            <StatusBadge status={r.status} />
                          </button>
                        </td>
                        <td class="nowrap" title={`${runTimeLabel(r).title ?? ''} · ${formatDuration(runDuration(r, now))}`}>
                          {runTimeLabel(r).text}
                        </td>
                        <td>{triggerLabel(r)}</td>
                        <td class="num">{formatNumber(r.counts.read)}</td>
                        <td class="num">{formatNumber(r.counts.inserted)}</td>
                        <td class="num">{formatNumber(r.counts.updated)}</td>
                        <td class="num">{formatNumber(r.counts.unchanged)}</td>
                        <td class="num">{formatNumber(r.counts.deleted)}</td>
                        <td class={failed > 0 ? 'num bad' : 'num'}>{formatNumber(failed)}</td>
                        <td>
                          {active(r) && access.can('edit') && (
                            <button type="button" class="button small danger-outline" onClick={() => void cancel(r)} disabled={cancelling.has(r.id)} aria-label={`Cancel ${r.status} run ${r.id}`}>
                              {cancelling.has(r.id) ? 'Cancelling…' : 'Cancel'}
                            </button>
                          )}
                        </td>
                      </tr>
                    );
                  })}
                </tbody>
              </table>
            </div>
            {next && (
              <div class="row center">
                <button type="button" class="button" onClick={() => void loadMore()}>
                  Load older runs
                </button>
              </div>
            )}
          </Section>
          <Section title="Error log" description="Failures of the runs above, grouped by message.">
            <ErrorTable errors={groupErrors(runs)} showRuns source />
          </Section>
        </>
      )}
    </div>
  );
}
