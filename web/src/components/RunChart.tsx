// Written (inserted + updated) and failed rows per run over time, drawn as a small SVG line chart.

import type { Run } from '../api';
import { formatDateTime, formatNumber } from '../lib/util';

export interface ChartPoint {
  t: number;
  exported: number;
  failed: number;
  run: Run;
}

export function chartPoints(runs: Run[]): ChartPoint[] {
  return runs
    .filter((r) => r.started_at || r.queued_at)
    .map((r) => ({
      t: new Date((r.started_at ?? r.queued_at) as string).getTime(),
      exported: (r.counts?.inserted ?? 0) + (r.counts?.updated ?? 0),
      failed: (r.counts?.failed ?? 0) + (r.counts?.transform_failed ?? 0),
      run: r,
    }))
    .filter((p) => Number.isFinite(p.t))
    .sort((a, b) => a.t - b.t);
}

/** A y axis for counts: a round step (1, 2 or 5 × 10^k, never below 1) and the ticks from 0 to the
 *  first multiple of the step at or above `max`. */
export function axis(max: number): { top: number; ticks: number[] } {
  if (!(max > 0)) return { top: 1, ticks: [0, 1] };
  const raw = max / 4;
  const pow = Math.pow(10, Math.floor(Math.log10(raw)));
  let step = [1, 2, 5, 10].map((m) => m * pow).find((s) => s >= raw) ?? 10 * pow;
  step = Math.max(1, Math.round(step));
  const top = Math.ceil(max / step) * step;
  const ticks: number[] = [];
  for (let v = 0; v <= top; v += step) ticks.push(v);
  return { top, ticks };
}

const W = 760;
const H = 220;
const M = { left: 56, right: 16, top: 14, bottom: 34 };

export function RunChart({ runs }: { runs: Run[] }) {
  const points = chartPoints(runs);
  if (points.length === 0) return <p class="muted">The chart appears after the first run.</p>;
  const { top: max, ticks } = axis(Math.max(...points.map((p) => Math.max(p.exported, p.failed))));
  const t0 = points[0].t;
  const t1 = points[points.length - 1].t;
  const iw = W - M.left - M.right;
  const ih = H - M.top - M.bottom;
  const x = (t: number) => (t1 === t0 ? M.left + iw / 2 : M.left + ((t - t0) / (t1 - t0)) * iw);
  const y = (v: number) => M.top + ih - (v / max) * ih;
  const line = (key: 'exported' | 'failed') => points.map((p, i) => `${i ? 'L' : 'M'}${x(p.t).toFixed(1)},${y(p[key]).toFixed(1)}`).join(' ');
  const area = `${line('exported')} L${x(points[points.length - 1].t).toFixed(1)},${y(0)} L${x(points[0].t).toFixed(1)},${y(0)} Z`;
  const totalExported = points.reduce((n, p) => n + p.exported, 0);
  const totalFailed = points.reduce((n, p) => n + p.failed, 0);
  const label = `Rows written and failed over the last ${points.length} runs: ${formatNumber(totalExported)} written, ${formatNumber(totalFailed)} failed.`;
  const fmtAxis = (t: number) => new Date(t).toLocaleString('en-GB', { month: 'short', day: '2-digit', hour: '2-digit', minute: '2-digit' });
  return (
    <figure class="chart">
      <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-label={label} preserveAspectRatio="xMidYMid meet">
        {ticks.map((v) => (
          <g key={v}>
            <line x1={M.left} x2={W - M.right} y1={y(v)} y2={y(v)} class="chart-grid" />
            <text x={M.left - 8} y={y(v) + 4} class="chart-axis" text-anchor="end">
              {formatNumber(Math.round(v))}
            </text>
          </g>
        ))}
        <text x={M.left} y={H - 10} class="chart-axis" text-anchor="start">
          {fmtAxis(t0)}
        </text>
        {t1 !== t0 && (
          <text x={W - M.right} y={H - 10} class="chart-axis" text-anchor="end">
            {fmtAxis(t1)}
          </text>
        )}
        {points.length > 1 && <path d={area} class="chart-area" />}
        {points.length > 1 && <path d={line('exported')} class="chart-line exported" />}
        {points.length > 1 && <path d={line('failed')} class="chart-line failed" />}
        {points.map((p) => (
          <g key={p.run.id}>
            <circle cx={x(p.t)} cy={y(p.exported)} r={3.5} class="chart-dot exported">
              <title>{`${formatDateTime(p.run.started_at)}: ${formatNumber(p.exported)} written`}</title>
            </circle>
            <circle cx={x(p.t)} cy={y(p.failed)} r={3.5} class="chart-dot failed">
              <title>{`${formatDateTime(p.run.started_at)}: ${formatNumber(p.failed)} failed`}</title>
            </circle>
          </g>
        ))}
      </svg>
      <figcaption class="chart-legend">
        <span class="legend exported">Written (new + updated)</span>
        <span class="legend failed">Failed</span>
      </figcaption>
    </figure>
  );
}
