// The Customer Model page says which source pipelines write each property, and which only the API
// and imports write.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { CustomerModelPage } from '../src/pages/CustomerModel';
import { json, mount, unmount } from './mount';

const schema = {
  properties: [
    { name: 'email', type: 'string', nullable: true },
    { name: 'country', type: 'string', nullable: true },
    { name: 'score', type: 'int', nullable: true },
  ],
};

function stub(lineage: unknown, status = 200) {
  vi.stubGlobal(
    'fetch',
    vi.fn(async (url: string) => {
      if (url === '/v1/profile-schema') return json(schema);
      if (url === '/v1/profile-schema/sources') return json(lineage, status);
      return json({ error: { code: 'NotFound', message: url } }, 404);
    }),
  );
}

describe('the Customer Model page', () => {
  let root: HTMLElement;
  afterEach(() => unmount(root));

  it('lists the sources writing each property and the properties no source writes', async () => {
    stub({
      properties: [
        { path: 'email', sources: [{ id: 'src_1', name: 'CRM', enabled: true }, { id: 'src_2', name: 'Billing', enabled: false }] },
        { path: 'country', sources: [{ id: 'src_1', name: 'CRM', enabled: true }] },
        { path: 'score', sources: [] },
      ],
      scripted: [{ id: 'src_3', name: 'Enricher', enabled: true }],
    });
    root = await mount(<CustomerModelPage />);
    await vi.waitFor(() => expect(root.querySelector('[data-property="email"]')).toBeTruthy());
    const email = root.querySelector('[data-property="email"]')!.textContent!;
    expect(email).toContain('CRM, Billing (disabled)');
    expect(email).toContain('the last to change a profile wins');
    expect(root.querySelector('[data-property="country"]')!.textContent).not.toContain('last to change');
    expect(root.querySelector('[data-property="score"]')).toBeNull();
    expect(root.querySelector('[data-unwritten]')!.textContent).toContain('score');
    expect(root.querySelector('[data-scripted]')!.textContent).toContain('Enricher');
  });

  it('says when no source writes the model, and keeps the model editable when the lineage fails', async () => {
    stub({ properties: [{ path: 'email', sources: [] }], scripted: [] });
    root = await mount(<CustomerModelPage />);
    await vi.waitFor(() => expect(root.textContent).toContain('No source pipeline writes the Customer Model'));
    unmount(root);
    stub({ error: { code: 'Internal', message: 'the store is down' } }, 500);
    root = await mount(<CustomerModelPage />);
    await vi.waitFor(() => expect(root.textContent).toContain('the store is down'));
    expect(root.querySelector('input[aria-label="Name of property email"]')).toBeTruthy();
  });
});
