// API tokens (admin only): create one with a role — its value is shown once —, list them, revoke.

import { useState } from 'preact/hooks';
import { api, fieldErrors, type CreatedToken, type Role, type Token } from '../api';
import { Alert, DeleteDialog, EmptyState, ErrorAlert, Field, HiddenHeader, Loading, PageHeader } from '../components/ui';
import { useAsync, useTitle } from '../hooks';
import { ROLE_LABELS } from '../lib/access';
import { formatDateTime } from '../lib/util';

const ROLE_HELP: Record<Role, string> = {
  viewer: 'Reads everything but secrets, tokens and the audit log.',
  editor: 'Also changes pipelines, runs, profiles and the Customer Model.',
  admin: 'Everything, including destinations, tokens and the audit log.',
};

export function TokensPage() {
  useTitle('API tokens');
  const { data, error, loading, reload } = useAsync<Token[]>(() => api.listTokens(), []);
  const [name, setName] = useState('');
  const [role, setRole] = useState<Role>('viewer');
  const [saving, setSaving] = useState(false);
  const [problem, setProblem] = useState<unknown>(null);
  const [created, setCreated] = useState<CreatedToken | null>(null);
  const [revoking, setRevoking] = useState<Token | null>(null);

  const submit = async (e: Event) => {
    e.preventDefault();
    setSaving(true);
    setProblem(null);
    try {
      const t = await api.createToken({ name: name.trim(), role });
      setCreated(t);
      setName('');
      await reload();
    } catch (err) {
      setProblem(err);
    } finally {
      setSaving(false);
    }
  };
  const fields = fieldErrors(problem);

  return (
    <div class="page">
      <PageHeader title="API tokens" subtitle="Tokens for people and programs, each with a role. Sluice keeps only a hash of each token." />
      {created && (
        <Alert kind="success" title={`Token “${created.name}” created`}>
          <p>Copy it now: it is shown this once and cannot be read again.</p>
          <code class="mono" data-testid="new-token">
            {created.token}
          </code>
        </Alert>
      )}
      <form class="card form-card" onSubmit={submit} aria-label="New token">
        <Field label="Name" errors={fields.name} required>
          {(id, describedBy, invalid) => (
            <input id={id} class="input" name="name" value={name} aria-describedby={describedBy} aria-invalid={invalid || undefined} onInput={(e) => setName((e.currentTarget as HTMLInputElement).value)} />
          )}
        </Field>
        <Field label="Role" errors={fields.role} help={ROLE_HELP[role]}>
          {(id, describedBy, invalid) => (
            <select id={id} class="input" name="role" value={role} aria-describedby={describedBy} aria-invalid={invalid || undefined} onChange={(e) => setRole((e.currentTarget as HTMLSelectElement).value as Role)}>
              {(['viewer', 'editor', 'admin'] as Role[]).map((r) => (
                <option key={r} value={r}>
                  {ROLE_LABELS[r]}
                </option>
              ))}
            </select>
          )}
        </Field>
        {problem && Object.keys(fields).length === 0 ? <ErrorAlert error={problem} /> : null}
        <button type="submit" class="button primary" disabled={saving}>
          {saving ? 'Creating…' : 'Create token'}
        </button>
      </form>
      <ErrorAlert error={error} />
      {loading && !data && <Loading />}
      {data && data.length === 0 && <EmptyState title="No API tokens yet">The admin token of the server works until you create others.</EmptyState>}
      {data && data.length > 0 && (
        <div class="table-wrap card">
          <table class="table">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Role</th>
                <th scope="col">Created</th>
                <HiddenHeader label="Actions" />
              </tr>
            </thead>
            <tbody>
              {data.map((t) => (
                <tr key={t.id}>
                  <td>{t.name}</td>
                  <td>{ROLE_LABELS[t.role]}</td>
                  <td>{formatDateTime(t.created_at)}</td>
                  <td class="actions">
                    <button type="button" class="button small danger-outline" onClick={() => setRevoking(t)} aria-label={`Revoke ${t.name}`}>
                      Revoke
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {revoking && (
        <DeleteDialog
          title={`Revoke ${revoking.name}?`}
          confirmLabel="Revoke token"
          onClose={() => setRevoking(null)}
          remove={() => api.revokeToken(revoking.id)}
          done={`Token “${revoking.name}” revoked.`}
          after={reload}
        >
          <p>Every request signed with it is refused from now on, on every Sluice instance.</p>
        </DeleteDialog>
      )}
    </div>
  );
}
