import { useState } from 'preact/hooks';
import { useAccess } from '../access';
import { api, type Connector, type Destination, type Pipeline } from '../api';
import { DeleteDialog, EmptyState, ErrorAlert, HiddenHeader, Loading, Menu, PageHeader } from '../components/ui';
import { useAsync, useTitle } from '../hooks';
import { connectorMonogram, describeSettings } from '../lib/connectors';
import { href, navigate } from '../router';

interface Data {
  destinations: Destination[];
  pipelines: Pipeline[];
  connectors: Connector[];
}

export function DestinationsPage() {
  const access = useAccess();
  useTitle('Destinations');
  const { data, error, loading, reload } = useAsync<Data>(async () => {
    const [destinations, pipelines, connectors] = await Promise.all([api.listDestinations(), api.listPipelines().catch(() => []), api.connectors().catch(() => [])]);
    return { destinations, pipelines, connectors };
  }, []);
  const [deleting, setDeleting] = useState<Destination | null>(null);

  const label = (kind: string) => data?.connectors.find((c) => c.kind === kind)?.label ?? kind;
  const count = (id: string) => data?.pipelines.filter((p) => p.destination === id).length ?? 0;

  return (
    <div class="page">
      <PageHeader
        title="Destinations"
        subtitle="The databases Sluice keeps in step with your customer profiles."
        actions={
          access.can('admin') && (
            <a class="button primary" href={href('destinations', 'new')}>
              ⊕ Add a new destination
            </a>
          )
        }
      />
      <ErrorAlert error={error} />
      {loading && !data && <Loading />}
      {data && data.destinations.length === 0 && (
        <EmptyState title="No destinations yet">
          <p>Connect a PostgreSQL, MySQL, ClickHouse, Snowflake or SQLite database to start exporting profiles.</p>
          {access.can('admin') ? (
            <a class="button primary" href={href('destinations', 'new')}>
              Add a new destination
            </a>
          ) : (
            <p class="muted">{access.whyNot('admin')}</p>
          )}
        </EmptyState>
      )}
      {data && data.destinations.length > 0 && (
        <div class="table-wrap card">
          <table class="table">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Type</th>
                <th scope="col">Connection</th>
                <th scope="col" class="num">
                  Pipelines
                </th>
                <HiddenHeader label="Actions" />
              </tr>
            </thead>
            <tbody>
              {data.destinations.map((d) => (
                <tr key={d.id}>
                  <td>
                    <a class="strong-link" href={href('destinations', d.id)}>
                      {d.name}
                    </a>
                  </td>
                  <td>
                    <span class="kind">
                      <span class={`monogram mono-${d.type}`} aria-hidden="true">
                        {connectorMonogram(d.type)}
                      </span>
                      {label(d.type)}
                    </span>
                  </td>
                  <td class="mono muted ellipsis" title={describeSettings(d.type, d.settings)}>
                    {describeSettings(d.type, d.settings) || '—'}
                  </td>
                  <td class="num">{count(d.id)}</td>
                  <td class="actions">
                    <a class="button small" href={href('destinations', d.id)}>
                      Open
                    </a>
                    <Menu
                      label={`More actions for ${d.name}`}
                      button="⋮"
                      buttonClass="icon-button bordered"
                      disabled={!access.can('edit')}
                      items={[
                        ...(access.can('admin') ? [{ label: 'Edit connection', onSelect: () => navigate(href('destinations', d.id, 'edit')) }] : []),
                        { label: 'Add pipeline…', onSelect: () => navigate(href('destinations', d.id, 'pipelines', 'new')) },
                        ...(access.can('admin') ? [{ label: 'Delete…', danger: true, separatorBefore: true, onSelect: () => setDeleting(d) }] : []),
                      ]}
                    />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {deleting && (
        <DeleteDialog
          title={`Delete ${deleting.name}?`}
          confirmLabel="Delete destination"
          onClose={() => setDeleting(null)}
          remove={() => api.deleteDestination(deleting.id)}
          done={`Destination “${deleting.name}” deleted.`}
          after={reload}
        >
          <p>
            Sluice forgets the connection settings of <strong>{deleting.name}</strong>. The database and its tables are not touched. A destination that
            still has pipelines cannot be deleted: delete its pipelines first.
          </p>
        </DeleteDialog>
      )}
    </div>
  );
}
