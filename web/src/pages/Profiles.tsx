// The profile browser: the same filter builder as pipelines, 50 profiles a page, a profile's whole
// document in a dialog.

import { useEffect, useMemo, useState } from 'preact/hooks';
import { api, errorMessage, fieldErrors, type FieldErrors, type FilterGroup, type Profile } from '../api';
import { FilterBuilder } from '../components/FilterBuilder';
import { Alert, Dialog, EmptyState, HiddenHeader, Loading, PageHeader, Section } from '../components/ui';
import { loadSchema, useTitle } from '../hooks';
import { filterProblems, normalizeFilter, summarizeFilter } from '../lib/filter';
import { flattenSchema, getPath, parseType, type PropertyPath } from '../lib/schema';
import { countErrors, formatDateTime, formatNumber } from '../lib/util';

const PAGE = 50;

function cell(v: unknown): string {
  if (v === undefined) return '';
  if (v === null) return 'null';
  if (typeof v === 'string') return v;
  return JSON.stringify(v);
}

/** The profiles section's line: the page, and the store's total with, under a filter, how many match. */
export function profilesHeadline(page: { profiles: unknown[]; total?: number; matching?: number | null }, pageNo: number): string {
  const shown = `Page ${pageNo} · ${page.profiles.length} profile${page.profiles.length === 1 ? '' : 's'}`;
  if (page.total === undefined) return shown;
  if (page.matching === undefined || page.matching === null) return `${shown} · ${formatNumber(page.total)} in total`;
  return `${shown} · ${formatNumber(page.matching)} of ${formatNumber(page.total)} match the filter`;
}

export function ProfilesPage() {
  useTitle('Profiles');
  const [properties, setProperties] = useState<PropertyPath[]>(flattenSchema(null));
  const [schemaError, setSchemaError] = useState<string | null>(null);
  const [filter, setFilter] = useState<FilterGroup | null>(null);
  const [applied, setApplied] = useState<FilterGroup | null>(null);
  const [cursors, setCursors] = useState<(string | null)[]>([null]);
  const [page, setPage] = useState<{ profiles: Profile[]; next: string | null; total?: number; matching?: number | null } | null>(null);
  const [loading, setLoading] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [errors, setErrors] = useState<FieldErrors>({});
  const [open, setOpen] = useState<Profile | null>(null);

  useEffect(() => {
    loadSchema(true).then(
      (s) => setProperties(flattenSchema(s)),
      (e) => setSchemaError(errorMessage(e)),
    );
  }, []);

  const fetchPage = async (f: FilterGroup | null, after: string | null) => {
    setLoading(true);
    setError(null);
    try {
      const res = await api.listProfiles({ filter: f, limit: PAGE, after });
      setPage(res);
      setErrors({});
      return true;
    } catch (e) {
      setErrors(fieldErrors(e));
      setError(errorMessage(e));
      return false;
    } finally {
      setLoading(false);
    }
  };

  useEffect(() => void fetchPage(null, null), []);

  const apply = async (e?: Event) => {
    e?.preventDefault();
    const f = normalizeFilter(filter);
    const local = filterProblems(f, properties);
    if (countErrors(local)) {
      setErrors(local);
      setError('The filter is not complete yet.');
      return;
    }
    if (await fetchPage(f, null)) {
      setApplied(f);
      setCursors([null]);
    }
  };

  const go = async (dir: 1 | -1) => {
    if (!page) return;
    if (dir === 1 && page.next) {
      if (await fetchPage(applied, page.next)) setCursors((c) => [...c, page.next]);
    } else if (dir === -1 && cursors.length > 1) {
      const prev = cursors[cursors.length - 2];
      if (await fetchPage(applied, prev)) setCursors((c) => c.slice(0, -1));
    }
  };

  // Columns: the built-ins and the first scalar properties of the model.
  const columns = useMemo(() => {
    const scalar = properties.filter((p) => !p.builtin && !['object', 'json', 'array'].includes(parseType(p.type).kind));
    return scalar.slice(0, 6);
  }, [properties]);

  const pageNo = cursors.length;
  return (
    <div class="page">
      <PageHeader title="Profiles" subtitle="Browse the profiles in the profile store, with the same filter pipelines use." />
      {schemaError && <Alert kind="warning">The Customer Model could not be loaded: {schemaError}</Alert>}
      <Section title="Filter" description={applied ? `Showing: ${summarizeFilter(applied)}` : 'Showing all profiles.'}>
        <form onSubmit={apply} aria-label="Profile filter">
          <FilterBuilder count filter={filter} onChange={setFilter} properties={properties} errors={errors} />
          <div class="row gap-s filter-apply">
            <button type="submit" class="button primary" disabled={loading}>
              Apply filter
            </button>
            {(filter || applied) && (
              <button
                type="button"
                class="button ghost"
                onClick={() => {
                  setFilter(null);
                  setApplied(null);
                  setCursors([null]);
                  setErrors({});
                  void fetchPage(null, null);
                }}
              >
                Clear
              </button>
            )}
          </div>
        </form>
      </Section>
      {error && <Alert>{error}</Alert>}
      <Section
        title="Profiles"
        description={page ? profilesHeadline(page, pageNo) : undefined}
        actions={
          <div class="row gap-s">
            <button type="button" class="button small" onClick={() => go(-1)} disabled={loading || pageNo <= 1}>
              ← Previous
            </button>
            <button type="button" class="button small" onClick={() => go(1)} disabled={loading || !page?.next}>
              Next →
            </button>
          </div>
        }
      >
        {!page && loading && <Loading />}
        {page && page.profiles.length === 0 && <EmptyState title={applied ? 'No profile matches the filter' : 'No profiles yet'}>{!applied && <p>Load profiles with <code>sluice profiles import FILE</code> or <code>POST /v1/profiles</code>.</p>}</EmptyState>}
        {page && page.profiles.length > 0 && (
          <div class="table-wrap">
            <table class="table profiles-table">
              <thead>
                <tr>
                  <th scope="col">_id</th>
                  {columns.map((c) => (
                    <th scope="col" key={c.path}>
                      {c.path}
                    </th>
                  ))}
                  <th scope="col">_updated_at</th>
                  <HiddenHeader label="Details" />
                </tr>
              </thead>
              <tbody>
                {page.profiles.map((p) => (
                  <tr key={p._id}>
                    <td class="mono">{p._id}</td>
                    {columns.map((c) => (
                      <td key={c.path} class="ellipsis" title={cell(getPath(p, c.path))}>
                        {cell(getPath(p, c.path))}
                      </td>
                    ))}
                    <td class="nowrap">{formatDateTime(p._updated_at)}</td>
                    <td class="sticky-end">
                      <button type="button" class="button small" onClick={() => setOpen(p)} aria-label={`View profile ${p._id}`}>
                        View
                      </button>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </Section>
      {open && (
        <Dialog title={`Profile ${open._id}`} onClose={() => setOpen(null)} wide>
          <pre class="json">{JSON.stringify(open, null, 2)}</pre>
        </Dialog>
      )}
    </div>
  );
}
