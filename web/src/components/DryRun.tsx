// A dry run's outcome: what a run would write, skip and remove, with sample rows of each kind (an update
// shows the columns whose value in the table would change). Nothing of it was written anywhere.

import type { Run } from '../api';
import { dryRunSummary, sampleValue } from '../lib/counts';
import { Alert, ErrorAlert, Section, Spinner } from './ui';

/** `onCancel` stops the dry run while it goes (the server cancels it like a run); the result then says
 *  it was cancelled. */
export function DryRunResult({ run, error, onClose, onCancel }: { run: Run | null; error: unknown; onClose: () => void; onCancel?: () => void }) {
  const close = (
    <button type="button" class="button small" onClick={onClose}>
      Close
    </button>
  );
  if (error) {
    return (
      <Section title="Dry run" actions={close}>
        <ErrorAlert error={error} />
      </Section>
    );
  }
  if (!run || run.status === 'queued' || run.status === 'running') {
    return (
      <Section
        title="Dry run"
        description="Deciding what a run would do. Nothing is written."
        actions={
          <>
            {run && onCancel && (
              <button type="button" class="button small" onClick={onCancel}>
                Cancel
              </button>
            )}
            {close}
          </>
        }
      >
        <p>
          <Spinner label="Dry run going" /> {run ? `${run.progress.processed.toLocaleString()} profiles looked at…` : 'Starting…'}
        </p>
      </Section>
    );
  }
  const samples = run.samples;
  return (
    <Section title="Dry run" description="What Run now would do with the pipeline as saved. Nothing was written: not to the table, not to Sluice." actions={close}>
      {run.status === 'cancelled' ? (
        <Alert kind="info" title="The dry run was cancelled">
          It stopped before deciding everything; nothing was written.
        </Alert>
      ) : run.status !== 'succeeded' ? (
        <Alert kind="error" title="The dry run failed">
          {run.message}
        </Alert>
      ) : (
        <p class="dry-run-summary" data-testid="dry-run-summary">
          {dryRunSummary(run.counts)}
        </p>
      )}
      {run.status === 'succeeded' && run.message && <Alert kind="info">{run.message}</Alert>}
      {samples && samples.inserts.length > 0 && (
        <>
          <h3>New rows, first of them</h3>
          <div class="table-wrap">
            <table class="table">
              <thead>
                <tr>
                  {Object.keys(samples.inserts[0].row).map((c) => (
                    <th scope="col" key={c}>
                      {c}
                    </th>
                  ))}
                </tr>
              </thead>
              <tbody>
                {samples.inserts.map((s) => (
                  <tr key={s.profile}>
                    {Object.values(s.row).map((v, i) => (
                      <td class="mono" key={i}>
                        {sampleValue(v)}
                      </td>
                    ))}
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </>
      )}
      {samples && samples.updates.length > 0 && (
        <>
          <h3>Updated rows, first of them</h3>
          <ul class="dry-run-changes">
            {samples.updates.map((s) => (
              <li key={s.profile}>
                <span class="mono">{sampleValue(s.key)}</span>:{' '}
                {s.changes.length === 0
                  ? 'missing from the table, written again'
                  : s.changes.map((c, i) => (
                      <span key={c.column}>
                        {i > 0 && ', '}
                        <span class="mono">{c.column}</span> {sampleValue(c.before)} → {sampleValue(c.after)}
                      </span>
                    ))}
              </li>
            ))}
          </ul>
        </>
      )}
      {samples && samples.deletes.length > 0 && (
        <>
          <h3>Removed rows, first of them</h3>
          <p class="mono">{samples.deletes.map((d) => sampleValue(d.key)).join(', ')}</p>
        </>
      )}
    </Section>
  );
}
