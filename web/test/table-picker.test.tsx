// The pipeline editor's table field lists the destination's tables (searchable through the browser's
// suggestion list), still takes a typed name, and loads a picked table at once.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { act } from 'preact/test-utils';
import { PipelineEditorPage } from '../src/pages/PipelineEditor';
import { schema } from './fixtures';
import { json, mount, unmount } from './mount';

const customers = {
  name: 'customers',
  columns: [
    { name: 'customer_id', type: 'text', nullable: false, has_default: false, supported: true, key_capable: true },
    { name: 'email', type: 'text', nullable: true, has_default: false, supported: true, key_capable: false },
  ],
  keys: [['customer_id']],
  primary_key: ['customer_id'],
  issues: [],
};

describe('the table picker', () => {
  let root: HTMLElement;
  afterEach(() => unmount(root));

  it('offers the tables of the destination and loads the one picked', async () => {
    const calls: string[] = [];
    vi.stubGlobal(
      'fetch',
      vi.fn(async (url: string) => {
        calls.push(url);
        if (url === '/v1/destinations/dst_1') return json({ id: 'dst_1', name: 'Warehouse', type: 'postgresql', settings: {} });
        if (url === '/v1/destinations/dst_1/tables') return json({ tables: [{ schema: 'public', name: 'customers' }, { schema: 'public', name: 'orders' }] });
        if (url === '/v1/destinations/dst_1/tables/customers') return json(customers);
        if (url.startsWith('/v1/profile-schema')) return json(schema);
        if (url.startsWith('/v1/functions')) return json({ functions: [] });
        if (url.startsWith('/v1/filters/operators')) return json({ types: [] });
        return json({ error: { code: 'NotFound', message: url } }, 404);
      }),
    );
    root = await mount(<PipelineEditorPage destination="dst_1" />);
    await vi.waitFor(() => expect(root.querySelector('input[name="table"]')).toBeTruthy());
    const input = root.querySelector<HTMLInputElement>('input[name="table"]')!;
    await vi.waitFor(() => expect(input.getAttribute('list')).toBeTruthy());
    const list = document.getElementById(input.getAttribute('list')!)!;
    expect([...list.querySelectorAll('option')].map((o) => o.value)).toEqual(['customers', 'orders']);
    expect(root.textContent).toContain('2 tables in schema public to pick from');
    // Picking from the list loads the table's columns without pressing Confirm.
    input.value = 'customers';
    await act(() => {
      input.dispatchEvent(new Event('input', { bubbles: true }));
    });
    await vi.waitFor(() => expect(calls).toContain('/v1/destinations/dst_1/tables/customers'));
    await vi.waitFor(() => expect(root.textContent).toContain('customer_id'));
    // Typing a name that is not listed is still allowed (and checked on Confirm).
    input.value = 'customers_v2';
    await act(() => {
      input.dispatchEvent(new Event('input', { bubbles: true }));
    });
    expect(input.value).toBe('customers_v2');
    expect(calls.filter((c) => c.endsWith('/customers_v2'))).toEqual([]);
  });
});
