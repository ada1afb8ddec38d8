// What the page tests share: a pipeline as the API answers it, JSON answers for a stubbed `fetch`, and
// rendering a page as the app does into the document.
import type { ComponentChildren } from 'preact';
import { render } from 'preact';
import { act } from 'preact/test-utils';
import { vi } from 'vitest';
import { AccessContext } from '../src/access';
import type { Pipeline, Principal } from '../src/api';
import { ToastProvider } from '../src/components/ui';

/** A pipeline as `GET /v1/pipelines/{id}` answers it, with `changes` for what a test is about. */
export function pipeline(changes: Partial<Pipeline> = {}): Pipeline {
  return {
    id: 'pl_1',
    destination: 'dst_1',
    name: 'Export users',
    description: '',
    enabled: true,
    filter: null,
    table: 'customers',
    key: 'customer_id',
    transformation: { mapping: { customer_id: '_id' } },
    schedule: null,
    on_leave: 'keep',
    filter_summary: '',
    running: null,
    last_run: null,
    next_run_at: null,
    created_at: '2026-03-01T08:00:00Z',
    updated_at: '2026-03-01T08:00:00Z',
    ...changes,
  };
}

/** An answer of the API with a JSON body. */
export const json = (body: unknown, status = 200) => new Response(JSON.stringify(body), { status });

/** Renders `page` as the app does (with toasts, and signed in as `me` when given) into a new element of the document. */
export async function mount(page: ComponentChildren, me?: Principal): Promise<HTMLElement> {
  const root = document.createElement('div');
  document.body.appendChild(root);
  const inner = me ? <AccessContext.Provider value={me}>{page}</AccessContext.Provider> : page;
  await act(() => render(<ToastProvider>{inner}</ToastProvider>, root));
  return root;
}

/** Takes down what `mount` rendered, and the stubbed globals. */
export function unmount(root: HTMLElement) {
  render(null, root);
  root.remove();
  vi.unstubAllGlobals();
}
