// Runs and monitoring of one pipeline: the run history with status, trigger, duration and counts (live
// while a run is going), a chart of exported and failed rows over time, and the error log grouped by
// message.

import { useEffect, useState } from 'preact/hooks';
import { useAccess } from '../access';
import { api, errorMessage, type Pipeline, type Run, type RunErrorGroup } from '../api';
import { DryRunResult } from '../components/DryRun';
import { RunChart } from '../components/RunChart';
import { Alert, EmptyState, ErrorAlert, HiddenHeader, Loading, PageHeader, ProgressBar, Section, Spinner, StatusBadge, useToast } from '../components/ui';
import { useInterval, useTitle } from '../hooks';
import { summarizeFilter } from '../lib/filter';
import { RECONCILE_HELP } from '../lib/pipeline';
import { runFigures } from '../lib/counts';
import { formatDateTime, formatDuration, formatNumber, nextRunInfo, relativeTime, scheduleLabel, triggerLabel } from '../lib/util';
import { href } from '../router';

export function active(r: Run): boolean {
  return r.status === 'queued' || r.status === 'running';
}

/** When a run is shown as having happened: its start, or for a queued run the time it was queued. */
export function runTimeLabel(r: Run): { text: string; title: string | undefined } {
  if (r.status === 'queued' || !r.started_at) {
    return { text: r.queued_at ? `queued ${formatDateTime(r.queued_at)}` : 'queued', title: r.queued_at ?? undefined };
  }
  return { text: formatDateTime(r.started_at), title: r.started_at };
}

/** A line explaining a run that is not yet running or is being stopped. */
export function runStateNote(r: Run): string | null {
  if (r.status === 'queued') return 'Waiting for a free slot: Sluice limits how many runs go at once, overall and per destination. The run starts when one ends.';
  return null;
}

/** How long a run took, or has taken so far at `now`. Never negative: a browser clock a little behind the
 *  server's must not show a run that started "in the future". */
export function runDuration(r: Run, now: number): number | null {
  if (r.duration_ms !== undefined && r.duration_ms !== null && !active(r)) return r.duration_ms;
  if (!r.started_at) return null;
  const end = r.finished_at ? new Date(r.finished_at).getTime() : now;
  return Math.max(0, end - new Date(r.started_at).getTime());
}

/** A relative time of something that already happened: "just now" rather than "in a moment" when the
 *  server's clock is a little ahead of the browser's. */
export function pastTime(iso: string | null | undefined, now: number): string {
  if (!iso) return '—';
  const t = new Date(iso).getTime();
  return relativeTime(iso, Number.isNaN(t) ? now : Math.max(now, t));
}

export interface GroupedError extends RunErrorGroup {
  runs: number;
}

/** The error groups of several runs merged by step and message: counts summed, latest time kept,
 *  sample profile ids combined (at most 10). */
export function groupErrors(runs: Run[]): GroupedError[] {
  const map = new Map<string, GroupedError>();
  for (const r of runs) {
    for (const e of r.errors ?? []) {
      const key = `${e.step}\u0000${e.message}`;
      const seen = e.last_seen ?? r.finished_at ?? r.started_at ?? undefined;
      const g = map.get(key);
      if (!g) {
        map.set(key, { ...e, sample_profiles: [...e.sample_profiles], last_seen: seen, runs: 1 });
      } else {
        g.count += e.count;
        g.runs += 1;
        if (seen && (!g.last_seen || seen > g.last_seen)) g.last_seen = seen;
        for (const id of e.sample_profiles) if (g.sample_profiles.length < 10 && !g.sample_profiles.includes(id)) g.sample_profiles.push(id);
      }
    }
  }
  return [...map.values()].sort((a, b) => (b.last_seen ?? '').localeCompare(a.last_seen ?? '') || b.count - a.count);
}

export function RunsPage({ id }: { id: string }) {
  const access = useAccess();
  const toast = useToast();
  const [pipeline, setPipeline] = useState<Pipeline | null>(null);
  const [destName, setDestName] = useState('Destination');
  const [first, setFirst] = useState<Run[] | null>(null);
  const [older, setOlder] = useState<Run[]>([]);
  const [next, setNext] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [selected, setSelected] = useState<string | null>(null);
  const [starting, setStarting] = useState(false);
  const [now, setNow] = useState(Date.now());
  useTitle(pipeline ? `Runs of ${pipeline.name}` : 'Runs');

  /** Reloads the pipeline and the newest page of runs; older pages loaded on demand are kept. */
  const load = async (initial = false) => {
    try {
      const [p, page] = await Promise.all([api.getPipeline(id), api.listRuns(id, { limit: 50 })]);
      // The clock moves with every answer, not only while a run is active: a page left idle and then
      // asked to run would otherwise measure the new run against the time it was opened.
      setNow(Date.now());
      setPipeline(p);
      setFirst(page.runs);
      if (initial) {
        setNext(page.next);
        api.getDestination(p.destination).then(
          (d) => setDestName(d.name),
          () => {},
        );
      }
      setError(null);
    } catch (e) {
      setError(e);
    }
  };
  useEffect(() => {
    setFirst(null);
    setOlder([]);
    setPipeline(null);
    void load(true);
  }, [id]);

  const runs: Run[] | null = first && [...first, ...older.filter((o) => !first.some((f) => f.id === o.id))];
  const anyActive = (runs ?? []).some(active) || !!pipeline?.running;
  const queuedOnly = (runs ?? []).some((r) => r.status === 'queued') && !(runs ?? []).some((r) => r.status === 'running');
  useInterval(
    () => {
      setNow(Date.now());
      void load();
    },
    1000,
    anyActive,
  );
  // While nothing runs, relative times ("last run 3 minutes ago", "next run in …") still age.
  useInterval(() => setNow(Date.now()), 15_000, !anyActive);

  const loadMore = async () => {
    if (!next) return;
    try {
      const page = await api.listRuns(id, { limit: 50, before: next });
      setOlder((old) => [...old, ...page.runs]);
      setNext(page.next);
    } catch (e) {
      toast('error', errorMessage(e));
    }
  };

  const runNow = async (mode: 'normal' | 'reconcile' = 'normal') => {
    setStarting(true);
    try {
      const r = await api.startRun(id, mode);
      setSelected(r.id);
      await load();
    } catch (e) {
      toast('error', errorMessage(e));
    } finally {
      setStarting(false);
    }
  };

  // A dry run started from this page, followed until it ends (it is not in the run history).
  const [dry, setDry] = useState<{ id: string | null; run: Run | null; error: unknown } | null>(null);
  const dryGoing = !!dry && !dry.error && (!dry.run || active(dry.run));
  const followDry = async (runId: string) => {
    try {
      const r = await api.getRun(runId);
      setDry((d) => (d && d.id === runId ? { ...d, run: r } : d));
    } catch (e) {
      setDry((d) => (d && d.id === runId ? { ...d, error: e } : d));
    }
  };
  useInterval(() => void (dry?.id && followDry(dry.id)), 500, dryGoing);
  const dryRun = async () => {
    setDry({ id: null, run: null, error: null });
    try {
      const r = await api.dryRun(id);
      setDry({ id: r.id, run: null, error: null });
      await followDry(r.id);
    } catch (e) {
      setDry({ id: null, run: null, error: e });
    }
  };

  // Stops the dry run on the server; the next poll shows it cancelled.
  const cancelDry = async () => {
    if (!dry?.id) return;
    try {
      await api.cancelRun(dry.id);
    } catch (e) {
      toast('error', errorMessage(e));
    }
  };
  // Nobody can follow a dry run once its result is closed (it is not in the history): closing one that
  // still goes stops it, so it does not hold a dry-run slot for nothing.
  const closeDry = () => {
    if (dryGoing && dry?.id) void api.cancelRun(dry.id).catch(() => {});
    setDry(null);
  };

  const [cancelling, setCancelling] = useState<Set<string>>(new Set());
  const cancel = async (run: Run) => {
    setCancelling((c) => new Set(c).add(run.id));
    try {
      await api.cancelRun(run.id);
      toast('info', run.status === 'queued' ? 'The queued run is cancelled.' : 'Cancelling the run: it stops at the end of the current batch.');
      await load();
    } catch (e) {
      setCancelling((c) => {
        const n = new Set(c);
        n.delete(run.id);
        return n;
      });
      toast('error', errorMessage(e));
    }
  };

  if (error && !runs) {
    return (
      <div class="page">
        <PageHeader crumbs={[{ label: 'Destinations', href: href('destinations') }, { label: 'Runs' }]} title="Runs" />
        <ErrorAlert error={error} />
      </div>
    );
  }
  if (!runs || !pipeline) return <div class="page"><Loading /></div>;

  const sel = runs.find((r) => r.id === selected) ?? runs[0];
  const nextRun = nextRunInfo(pipeline, now);
  const grouped = groupErrors(runs);
  const finished = runs.filter((r) => !active(r));
  const totals = finished.reduce(
    (acc, r) => ({ exported: acc.exported + r.counts.inserted + r.counts.updated, failed: acc.failed + r.counts.failed + r.counts.transform_failed }),
    { exported: 0, failed: 0 },
  );

  return (
    <div class="page">
      <PageHeader
        crumbs={[
          { label: 'Destinations', href: href('destinations') },
          { label: destName, href: href('destinations', pipeline.destination) },
          { label: pipeline.name },
        ]}
        title={pipeline.name}
        subtitle={
          <>
            {pipeline.description && <>{pipeline.description} · </>}
            Table <span class="mono">{pipeline.table}</span> · {pipeline.filter_summary?.trim() || summarizeFilter(pipeline.filter)} · {scheduleLabel(pipeline.schedule)}
            {nextRun?.exact ? (
              <>
                {' · '}
                <time dateTime={pipeline.next_run_at ?? undefined} title={nextRun.exact}>
                  {nextRun.text}
                </time>
              </>
            ) : null}
            {!pipeline.enabled && ' · disabled'}
          </>
        }
        actions={
          <>
            <a class="button" href={href('pipelines', id)}>
              Manage
            </a>
            <button type="button" class="button" onClick={() => void dryRun()} disabled={dryGoing || !access.can('edit')} title={access.whyNot('edit') ?? 'See what a run would write, skip and remove, without writing anything'}>
              Dry run
            </button>
            <button type="button" class="button" onClick={() => runNow('reconcile')} disabled={!pipeline.enabled || anyActive || starting || !access.can('edit')} title={access.whyNot('edit') ?? (pipeline.enabled ? RECONCILE_HELP : 'Enable the pipeline to run it')}>
              Reconcile
            </button>
            <button type="button" class="button primary" onClick={() => runNow()} disabled={!pipeline.enabled || anyActive || starting || !access.can('edit')} title={access.whyNot('edit') ?? (pipeline.enabled ? undefined : 'Enable the pipeline to run it')}>
              {anyActive ? (
                <>
                  <Spinner label={queuedOnly ? 'Queued' : 'Running'} /> {queuedOnly ? 'Queued…' : 'Running…'}
                </>
              ) : (
                '▶ Run now'
              )}
            </button>
          </>
        }
      />
      {error !== null && <ErrorAlert error={error} />}
      {dry && <DryRunResult run={dry.run} error={dry.error} onClose={closeDry} onCancel={access.can('edit') ? () => void cancelDry() : undefined} />}
      {runs.length === 0 ? (
        <EmptyState title="No runs yet">
          <p>{pipeline.enabled ? 'Run the pipeline now, or wait for its schedule.' : 'Enable the pipeline on its destination page, then run it.'}</p>
        </EmptyState>
      ) : (
        <>
          <div class="stats">
            <Stat label="Runs shown" value={formatNumber(runs.length)} />
            <Stat label="Rows written" value={formatNumber(totals.exported)} />
            <Stat label="Rows failed" value={formatNumber(totals.failed)} warn={totals.failed > 0} />
            <Stat label="Last run" value={pastTime(runs[0].finished_at ?? runs[0].started_at ?? runs[0].queued_at, now)} />
          </div>
          <Section title="Written and failed rows over time">
            <RunChart runs={runs} />
          </Section>
          {sel && <RunDetails run={sel} now={now} onCancel={cancel} cancelling={cancelling.has(sel.id)} />}
          <Section title="Run history" description="Newest first. Select a run to see its counts and errors.">
            <div class="table-wrap">
              <table class="table runs-table">
                <thead>
                  <tr>
                    <th scope="col">Status</th>
                    <th scope="col">Started</th>
                    <th scope="col">Trigger</th>
                    <th scope="col" class="num">Duration</th>
                    <th scope="col" class="num">In audience</th>
                    <th scope="col" class="num">Written</th>
                    <th scope="col" class="num">Skipped, unchanged</th>
                    <th scope="col" class="num">Removed</th>
                    <th scope="col" class="num">Failed</th>
                    <HiddenHeader label="Actions" />
                  </tr>
                </thead>
                <tbody>
                  {runs.map((r) => (
                    <tr key={r.id} class={r.id === sel?.id ? 'selected' : undefined}>
                      <td>
                        <button type="button" class="link-button" aria-pressed={r.id === sel?.id} onClick={() => setSelected(r.id)} aria-label={`Show run ${r.id} (${r.status})`}>
                          <StatusBadge status={r.status} />
                        </button>
                      </td>
                      <td class="nowrap" title={runTimeLabel(r).title}>{runTimeLabel(r).text}</td>
                      <td>{triggerLabel(r)}</td>
                      <td class="num">{formatDuration(runDuration(r, now))}</td>
                      <td class="num">{formatNumber(runFigures(r.counts).inAudience)}</td>
                      <td class="num" title={`${formatNumber(r.counts.inserted)} new, ${formatNumber(r.counts.updated)} updated`}>{formatNumber(runFigures(r.counts).written)}</td>
                      <td class="num">{formatNumber(r.counts.unchanged)}</td>
                      <td class="num">{formatNumber(r.counts.deleted)}</td>
                      <td class={runFigures(r.counts).failed > 0 ? 'num bad' : 'num'}>{formatNumber(runFigures(r.counts).failed)}</td>
                      <td>
                        {active(r) && access.can('edit') && (
                          <button type="button" class="button small danger-outline" onClick={() => cancel(r)} disabled={cancelling.has(r.id)} aria-label={`Cancel ${r.status} run ${r.id}`}>
                            {cancelling.has(r.id) ? 'Cancelling…' : 'Cancel'}
                          </button>
                        )}
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
            {next && (
              <div class="row center">
                <button type="button" class="button" onClick={loadMore}>
                  Load older runs
                </button>
              </div>
            )}
          </Section>
          <Section title="Error log" description="Failures of the runs above, grouped by message.">
            <ErrorTable errors={grouped} showRuns />
          </Section>
        </>
      )}
    </div>
  );
}

export function Stat({ label, value, warn }: { label: string; value: string; warn?: boolean }) {
  return (
    <div class={warn ? 'stat card warn' : 'stat card'}>
      <div class="stat-value">{value}</div>
      <div class="stat-label">{label}</div>
    </div>
  );
}

/** A run's counts in the words of its kind: an export's audience and rows, or a source's rows and profiles. */
export function countRows(r: Run, source: boolean): [string, number, string?][] {
  const c = r.counts;
  if (source) {
    return [
      ['Rows read', c.read],
      ['Profiles created', c.inserted],
      ['Profiles updated', c.updated],
      ['Unchanged', c.unchanged],
      ['Profiles deleted', c.deleted],
      ['Skipped by the script', c.filtered_out],
      ['Failed in the transformation', c.transform_failed, c.transform_failed ? 'bad' : undefined],
      ['Failed rows', c.failed, c.failed ? 'bad' : undefined],
    ];
  }
  const f = runFigures(c);
  return [
    ['In audience', f.inAudience],
    ['Not in audience', f.notInAudience],
    ['Written: new', f.created],
    ['Written: updated', f.updated],
    ['Skipped, unchanged', f.unchanged],
    ['Removed', f.removed],
    ['Failed in the transformation', c.transform_failed, c.transform_failed ? 'bad' : undefined],
    ['Failed at the write', c.failed, c.failed ? 'bad' : undefined],
    ['Read from the store (new or changed)', c.read],
  ];
}

export function RunDetails({ run: r, now, onCancel, cancelling, source = false }: { run: Run; now: number; onCancel: (r: Run) => void; cancelling: boolean; source?: boolean }) {
  const access = useAccess();
  const counts = countRows(r, source);
  return (
    <Section
      title={active(r) ? 'Current run' : 'Selected run'}
      description={
        <>
          <StatusBadge status={r.status} /> {triggerLabel(r)} run · {r.started_at ? `started ${formatDateTime(r.started_at)}` : runTimeLabel(r).text}
          {r.finished_at && <> · finished {formatDateTime(r.finished_at)}</>} · {formatDuration(runDuration(r, now))}
          {r.rows_per_second ? <> · {formatNumber(r.rows_per_second)} rows/s</> : null}
        </>
      }
      actions={
        active(r) && access.can('edit') ? (
          <button type="button" class="button small danger-outline" onClick={() => onCancel(r)} disabled={cancelling}>
            {cancelling ? 'Cancelling…' : r.status === 'queued' ? 'Cancel queued run' : 'Cancel run'}
          </button>
        ) : undefined
      }
    >
      {runStateNote(r) && <Alert kind="info">{runStateNote(r)}</Alert>}
      {r.status === 'running' && (
        <div class="run-live" aria-live="polite">
          <div class="small">
            Processed {formatNumber(r.progress?.processed ?? 0)}
            {r.progress?.total ? ` of ${formatNumber(r.progress.total)} ${source ? 'rows' : 'profiles'}` : source ? ' rows' : ' profiles'}
          </div>
          <ProgressBar value={r.progress?.processed ?? 0} total={r.progress?.total ?? null} label="Run progress" />
        </div>
      )}
      {r.message && <Alert kind={r.status === 'failed' ? 'error' : 'info'}>{r.message}</Alert>}
      <dl class="counts" aria-label="Counts of the run">
        {counts.map(([label, value, cls]) => (
          <div key={label} class={cls ? `count ${cls}` : 'count'}>
            <dt>{label}</dt>
            <dd>{formatNumber(value)}</dd>
          </div>
        ))}
      </dl>
      {r.errors.length > 0 && (
        <>
          <h3 class="subhead">Errors of this run</h3>
          <ErrorTable errors={r.errors.map((e) => ({ ...e, runs: 1 }))} source={source} />
        </>
      )}
    </Section>
  );
}

export function ErrorTable({ errors, showRuns, source = false }: { errors: GroupedError[]; showRuns?: boolean; source?: boolean }) {
  if (errors.length === 0)
    return <p class="muted">{source ? 'No errors. Every row read was written or was unchanged.' : 'No errors. Every profile in the audience was written or skipped, unchanged.'}</p>;
  return (
    <div class="table-wrap">
      <table class="table errors-table">
        <thead>
          <tr>
            <th scope="col">Message</th>
            <th scope="col">Step</th>
            <th scope="col" class="num">Count</th>
            {showRuns && <th scope="col" class="num">Runs</th>}
            <th scope="col">Last seen</th>
            <th scope="col">{source ? 'Sample ids' : 'Sample profiles'}</th>
          </tr>
        </thead>
        <tbody>
          {errors.map((e, i) => (
            <tr key={i}>
              <td class="error-message">{e.message}</td>
              <td>{e.step}</td>
              <td class="num">{formatNumber(e.count)}</td>
              {showRuns && <td class="num">{e.runs}</td>}
              <td title={e.last_seen}>{e.last_seen ? formatDateTime(e.last_seen) : '—'}</td>
              <td class="mono small">
                {e.sample_profiles.map((p, n) => (
                  <span key={p}>
                    {n > 0 && ', '}
                    {p}
                  </span>
                ))}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
