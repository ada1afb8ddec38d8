// The destination page says which source pipelines feed what each of its pipelines reads, and says
// when a script makes that unknowable.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { DestinationPage } from '../src/pages/DestinationPage';
import { json, mount, pipeline, unmount } from './mount';

const lineage = {
  pipelines: [
    {
      id: 'pl_1',
      name: 'Export users',
      table: 'customers',
      reads: ['email', 'address.city'],
      sources: [
        { id: 'src_1', name: 'CRM customers', enabled: true, properties: ['email', 'address'] },
        { id: 'src_2', name: 'Scripted', enabled: false, properties: null },
      ],
    },
    { id: 'pl_2', name: 'Script export', table: 'scores', reads: null, sources: [] },
  ],
};

describe('the lineage section of a destination', () => {
  let root: HTMLElement;
  afterEach(() => unmount(root));

  it('lists the sources feeding each pipeline and the properties they write', async () => {
    const calls: string[] = [];
    vi.stubGlobal(
      'fetch',
      vi.fn(async (url: string) => {
        calls.push(url);
        if (url === '/v1/destinations/dst_1') return json({ id: 'dst_1', name: 'Warehouse', type: 'postgresql', settings: {} });
        if (url === '/v1/destinations/dst_1/lineage') return json(lineage);
        if (url.startsWith('/v1/pipelines')) return json({ pipelines: [pipeline(), pipeline({ id: 'pl_2', name: 'Script export', table: 'scores' })] });
        if (url.startsWith('/v1/connectors')) return json({ connectors: [] });
        return json({ error: { code: 'NotFound', message: url } }, 404);
      }),
    );
    root = await mount(<DestinationPage id="dst_1" />);
    await vi.waitFor(() => expect(root.querySelector('[data-pipeline="pl_1"]')).toBeTruthy());
    expect(calls).toContain('/v1/destinations/dst_1/lineage');
    const first = root.querySelector('[data-pipeline="pl_1"]')!.textContent!;
    expect(first).toContain('CRM customers');
    expect(first).toContain('email, address');
    expect(first).toContain('Scripted (disabled)');
    expect(first).toContain('a script: may write what it reads');
    const second = root.querySelector('[data-pipeline="pl_2"]')!.textContent!;
    expect(second).toContain('may read any property');
    expect(second).toContain('No source pipeline writes what it reads.');
  });

  it('leaves the page working when the lineage cannot be read', async () => {
    vi.stubGlobal(
      'fetch',
      vi.fn(async (url: string) => {
        if (url === '/v1/destinations/dst_1') return json({ id: 'dst_1', name: 'Warehouse', type: 'postgresql', settings: {} });
        if (url === '/v1/destinations/dst_1/lineage') return json({ error: { code: 'Internal', message: 'the store is down' } }, 500);
        if (url.startsWith('/v1/pipelines')) return json({ pipelines: [pipeline()] });
        if (url.startsWith('/v1/connectors')) return json({ connectors: [] });
        return json({ error: { code: 'NotFound', message: url } }, 404);
      }),
    );
    root = await mount(<DestinationPage id="dst_1" />);
    await vi.waitFor(() => expect(root.textContent).toContain('the store is down'));
    expect(root.textContent).toContain('Export users');
  });
});
