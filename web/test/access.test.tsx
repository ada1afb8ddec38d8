// Role-aware UI: each role sees what it may do, and what it may not is hidden or disabled with the reason.
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Principal, Role } from '../src/api';
import { SignedIn } from '../src/App';
import { can, whyNot } from '../src/lib/access';
import { RunsPage } from '../src/pages/Runs';
import { json, mount, pipeline as basePipeline, unmount } from './mount';

const pipeline = basePipeline();

function stubApi() {
  vi.stubGlobal(
    'fetch',
    vi.fn(async (url: string) => {
      if (url === '/v1/health') return json({ status: 'ok', version: '0.1.0' });
      if (url === '/v1/destinations') return json({ destinations: [{ id: 'dst_1', name: 'Warehouse', type: 'postgresql', settings: { host: 'db' }, created_at: '2026-03-01T08:00:00Z', updated_at: '2026-03-01T08:00:00Z' }] });
      if (url.startsWith('/v1/pipelines/pl_1/runs')) return json({ runs: [], next: null });
      if (url === '/v1/pipelines/pl_1') return json(pipeline);
      if (url.startsWith('/v1/pipelines')) return json({ pipelines: [pipeline] });
      if (url === '/v1/destinations/dst_1') return json({ id: 'dst_1', name: 'Warehouse', type: 'postgresql', settings: {} });
      if (url === '/v1/connectors') return json([]);
      return json({ error: { code: 'NotFound', message: url } }, 404);
    }),
  );
}

const me = (role: Role): Principal => ({ id: `tok_${role}`, name: `${role} token`, role });

describe('what each role may do', () => {
  it('orders the roles and explains a refusal', () => {
    expect(can('viewer', 'read')).toBe(true);
    expect(can('viewer', 'edit')).toBe(false);
    expect(can('editor', 'edit')).toBe(true);
    expect(can('editor', 'admin')).toBe(false);
    expect(can('admin', 'admin')).toBe(true);
    expect(whyNot('admin', 'admin')).toBeNull();
    expect(whyNot('viewer', 'edit')).toContain('only read');
    expect(whyNot('editor', 'admin')).toContain('editor');
  });
});

describe.each([
  { role: 'viewer' as Role, admin: false, edit: false },
  { role: 'editor' as Role, admin: false, edit: true },
  { role: 'admin' as Role, admin: true, edit: true },
])('signed in as $role', ({ role, admin, edit }) => {
  let root: HTMLElement;
  afterEach(() => {
    unmount(root);
    location.hash = '';
  });

  it('shows the navigation and destination actions the role allows', async () => {
    stubApi();
    location.hash = '#/destinations';
    root = await mount(<SignedIn me={me(role)} onSignOut={() => {}} />, me(role));
    await vi.waitFor(() => expect(root.textContent).toContain('Warehouse'));
    const nav = root.querySelector('nav')!.textContent!;
    expect(nav.includes('API tokens')).toBe(admin);
    expect(nav.includes('Audit log')).toBe(admin);
    expect(root.textContent).toContain(`${role} token`);
    expect(root.textContent!.includes('Add a new destination')).toBe(admin);
    // The row menu offers adding a pipeline to editors; a viewer's is disabled.
    const menu = root.querySelector<HTMLButtonElement>('button[aria-label="More actions for Warehouse"]')!;
    expect(menu.disabled).toBe(!edit);
  });

  it('offers Run now to the roles that may start runs', async () => {
    stubApi();
    root = await mount(<RunsPage id="pl_1" />, me(role));
    await vi.waitFor(() => expect(root.textContent).toContain('Run now'));
    const run = Array.from(root.querySelectorAll<HTMLButtonElement>('button')).find((b) => b.textContent?.includes('Run now'))!;
    expect(run.disabled).toBe(!edit);
    if (!edit) expect(run.title).toContain('only read');
  });

  it('keeps the admin pages to admins', async () => {
    stubApi();
    location.hash = '#/tokens';
    vi.stubGlobal(
      'fetch',
      vi.fn(async (url: string) => {
        if (url === '/v1/tokens') return new Response(JSON.stringify({ tokens: [{ id: 'tok_1', name: 'ci', role: 'editor', created_at: '2026-03-01T08:00:00Z' }] }));
        return new Response(JSON.stringify({ status: 'ok', version: '0.1.0' }));
      }),
    );
    root = await mount(<SignedIn me={me(role)} onSignOut={() => {}} />, me(role));
    if (admin) {
      await vi.waitFor(() => expect(root.querySelector('button[aria-label="Revoke ci"]')).toBeTruthy());
    } else {
      expect(root.textContent).toContain('Only an admin token can do this');
      expect(root.querySelector('button[aria-label="Revoke ci"]')).toBeNull();
    }
  });
});
