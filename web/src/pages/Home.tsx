// The home page: what is running now (with progress), what failed in the last 24 hours and why, what runs
// next, and whether each destination answered its last connection test.

import { useEffect, useState } from 'preact/hooks';
import { api, type Destination, type Pipeline, type Run } from '../api';
import { EmptyState, ErrorAlert, Loading, PageHeader, ProgressBar, Section, StatusBadge } from '../components/ui';
import { useInterval, useTitle } from '../hooks';
import { countsSummary } from '../lib/counts';
import { destinationHealth, recentFailures, upcomingRuns } from '../lib/home';
import { formatDateTime, formatNumber, relativeTime } from '../lib/util';
import { href } from '../router';

interface Data {
  pipelines: Pipeline[];
  destinations: Destination[];
  runs: Map<string, Run[]>;
  active: Run[];
}

async function load(): Promise<Data> {
  const [pipelines, destinations] = await Promise.all([api.listPipelines(), api.listDestinations()]);
  const pages = await Promise.all(pipelines.map((p) => api.listRuns(p.id, { limit: 20 }).then((r) => [p.id, r.runs] as const, () => [p.id, [] as Run[]] as const)));
  const runs = new Map<string, Run[]>(pages);
  const active = pages.flatMap(([, rs]) => rs.filter((r) => r.status === 'running' || r.status === 'queued'));
  return { pipelines, destinations, runs, active };
}

export function HomePage() {
  useTitle('Home');
  const [data, setData] = useState<Data | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [now, setNow] = useState(Date.now());
  const refresh = () =>
    load().then(
      (d) => {
        setData(d);
        setError(null);
        setNow(Date.now());
      },
      (e) => setError(e),
    );
  useEffect(() => void refresh(), []);
  // Progress moves every second while something runs; otherwise the page ages slowly.
  useInterval(() => void refresh(), data && data.active.length ? 1000 : 15_000, true);

  if (!data) {
    return (
      <div class="page">
        <PageHeader title="Home" />
        {error ? <ErrorAlert error={error} /> : <Loading />}
      </div>
    );
  }
  const byId = new Map(data.pipelines.map((p) => [p.id, p]));
  const destName = new Map(data.destinations.map((d) => [d.id, d.name]));
  const failures = recentFailures(data.pipelines, data.runs, now);
  const upcoming = upcomingRuns(data.pipelines);
  return (
    <div class="page home">
      <PageHeader title="Home" subtitle="What is running, what failed recently, what runs next, and how the destinations answer." />
      {error !== null && <ErrorAlert error={error} />}
      {data.destinations.length === 0 && (
        <EmptyState title="Nothing set up yet">
          <p>
            Start by <a href={href('destinations', 'new')}>adding a destination</a>, then add a pipeline to it.
          </p>
        </EmptyState>
      )}
      <Section title="Running now">
        {data.active.length === 0 ? (
          <p class="muted">No run in progress.</p>
        ) : (
          <ul class="home-list" aria-label="Runs in progress">
            {data.active.map((r) => {
              const p = byId.get(r.pipeline);
              return (
                <li key={r.id}>
                  <a href={href('pipelines', r.pipeline, 'runs')}>{p?.name ?? r.pipeline}</a> <StatusBadge status={r.status} />
                  <span class="muted small"> · {p ? destName.get(p.destination) : ''} · started {relativeTime(r.started_at ?? r.queued_at, Math.max(now, Date.parse(r.started_at ?? r.queued_at ?? '') || now))}</span>
                  <div class="small">
                    {formatNumber(r.progress?.processed ?? 0)}
                    {r.progress?.total ? ` of ${formatNumber(r.progress.total)} profiles` : ' profiles'}
                  </div>
                  <ProgressBar value={r.progress?.processed ?? 0} total={r.progress?.total ?? null} label={`Progress of ${p?.name ?? r.pipeline}`} />
                </li>
              );
            })}
          </ul>
        )}
      </Section>
      <Section title="Failures in the last 24 hours">
        {failures.length === 0 ? (
          <p class="muted">No failed run in the last 24 hours.</p>
        ) : (
          <ul class="home-list" aria-label="Failures in the last 24 hours">
            {failures.map((f) => (
              <li key={f.run.id}>
                <a href={href('pipelines', f.pipeline.id, 'runs')}>{f.pipeline.name}</a> <StatusBadge status={f.run.status} />
                <span class="muted small"> · {formatDateTime(f.run.finished_at)} · {countsSummary(f.run.counts)}</span>
                <div class="error-message small">{f.firstError}</div>
              </li>
            ))}
          </ul>
        )}
      </Section>
      <Section title="Next scheduled runs">
        {upcoming.length === 0 ? (
          <p class="muted">No pipeline is scheduled.</p>
        ) : (
          <ul class="home-list" aria-label="Next scheduled runs">
            {upcoming.map((u) => (
              <li key={u.pipeline.id}>
                <a href={href('pipelines', u.pipeline.id, 'runs')}>{u.pipeline.name}</a>
                <span class="muted small" title={formatDateTime(u.pipeline.next_run_at)}>
                  {' · '}
                  {u.at - now < 45_000 ? 'due now' : relativeTime(u.pipeline.next_run_at, now)} · {destName.get(u.pipeline.destination)}
                </span>
              </li>
            ))}
          </ul>
        )}
      </Section>
      <Section title="Destinations">
        {data.destinations.length === 0 ? (
          <p class="muted">No destination yet.</p>
        ) : (
          <ul class="home-list" aria-label="Destination health">
            {data.destinations.map((d) => {
              const h = destinationHealth(d);
              const t = d.last_test;
              return (
                <li key={d.id}>
                  <a href={href('destinations', d.id)}>{d.name}</a>{' '}
                  <span class={`badge badge-${h.state === 'ok' ? 'succeeded' : h.state === 'failed' ? 'failed' : 'cancelled'}`}>{h.state === 'ok' ? 'OK' : h.state === 'failed' ? 'Failing' : 'Not tested'}</span>
                  <span class="muted small">
                    {' · '}
                    {h.text}
                    {t ? ` ${relativeTime(t.at, Math.max(now, Date.parse(t.at) || now))}` : ''}
                  </span>
                </li>
              );
            })}
          </ul>
        )}
      </Section>
    </div>
  );
}
