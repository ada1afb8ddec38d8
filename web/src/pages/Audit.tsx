// The audit log (admin only): every change made through the API, newest first, with who made it and
// the resource before and after (secrets left out by the server).

import { useState } from 'preact/hooks';
import { api, errorMessage, type AuditItem, type AuditPage } from '../api';
import { EmptyState, ErrorAlert, HiddenHeader, Loading, PageHeader } from '../components/ui';
import { useAsync, useTitle } from '../hooks';
import { formatDateTime } from '../lib/util';

const PAGE = 50;

export function AuditPage() {
  useTitle('Audit log');
  const { data, error, loading, setData } = useAsync<AuditPage>(() => api.listAudit({ limit: PAGE }), []);
  const [more, setMore] = useState<string | null>(null);
  const [open, setOpen] = useState<number | null>(null);

  const loadMore = async () => {
    if (!data?.next) return;
    setMore(null);
    try {
      const page = await api.listAudit({ limit: PAGE, before: data.next });
      setData({ entries: [...data.entries, ...page.entries], next: page.next });
    } catch (e) {
      setMore(errorMessage(e));
    }
  };

  return (
    <div class="page">
      <PageHeader title="Audit log" subtitle="Every change made through the API, newest first: who, what, when, and the resource before and after." />
      <ErrorAlert error={error} />
      {loading && !data && <Loading />}
      {data && data.entries.length === 0 && <EmptyState title="No changes yet" />}
      {data && data.entries.length > 0 && (
        <div class="table-wrap card">
          <table class="table">
            <thead>
              <tr>
                <th scope="col">When</th>
                <th scope="col">Who</th>
                <th scope="col">What</th>
                <th scope="col">Resource</th>
                <HiddenHeader label="Details" />
              </tr>
            </thead>
            <tbody>
              {data.entries.map((e) => (
                <Entry key={e.seq} e={e} open={open === e.seq} onToggle={() => setOpen(open === e.seq ? null : e.seq)} />
              ))}
            </tbody>
          </table>
        </div>
      )}
      {more && <p class="field-error">{more}</p>}
      {data?.next && (
        <button type="button" class="button" onClick={loadMore}>
          Load older changes
        </button>
      )}
    </div>
  );
}

function Entry({ e, open, onToggle }: { e: AuditItem; open: boolean; onToggle: () => void }) {
  return (
    <>
      <tr>
        <td>{formatDateTime(e.at)}</td>
        <td>{e.token_name}</td>
        <td class="mono">
          {e.method} {e.route}
        </td>
        <td class="mono">{e.resource ?? '—'}</td>
        <td class="actions">
          <button type="button" class="button small" aria-expanded={open} onClick={onToggle} aria-label={`Before and after of change ${e.seq}`}>
            {open ? 'Hide' : 'Details'}
          </button>
        </td>
      </tr>
      {open && (
        <tr>
          <td colSpan={5}>
            <div class="audit-diff">
              <div>
                <h3 class="small">Before</h3>
                <pre class="mono">{e.before === null ? '(nothing)' : JSON.stringify(e.before, null, 2)}</pre>
              </div>
              <div>
                <h3 class="small">After</h3>
                <pre class="mono">{e.after === null ? '(deleted)' : JSON.stringify(e.after, null, 2)}</pre>
              </div>
            </div>
          </td>
        </tr>
      )}
    </>
  );
}
