// The UI's API types and client against the OpenAPI document the server serves (its committed copy,
// `src/generated/openapi.json`, which a Rust test keeps equal to what the server serves).

import { describe, expect, it, vi } from 'vitest';
import { generate } from '../scripts/generate-api.mjs';
import { Client } from '../src/api';
import committed from '../src/generated/api.ts?raw';
import doc from '../src/generated/openapi.json';

describe('the generated API types', () => {
  it('are what the generator makes of the committed document (run `npm run generate`)', () => {
    expect(generate(doc)).toBe(committed);
  });
});

type Paths = Record<string, Record<string, { operationId: string }>>;

/** The documented operation a request goes to, matching `{param}` segments to anything. */
function operationOf(method: string, url: string): string | undefined {
  const path = new URL(url, 'http://x').pathname.split('/');
  for (const [template, item] of Object.entries(doc.paths as unknown as Paths)) {
    const parts = template.split('/');
    const fits = parts.length === path.length && parts.every((p, i) => (p.startsWith('{') ? path[i] !== '' : p === decodeURIComponent(path[i])));
    if (fits && item[method.toLowerCase()]) return item[method.toLowerCase()].operationId;
  }
  return undefined;
}

describe('the client', () => {
  it('calls only documented routes, with their methods', async () => {
    const calls: [string, string][] = [];
    const fetch = vi.fn(async (url: string, init?: RequestInit) => {
      calls.push([init?.method ?? 'GET', url]);
      return new Response('{}', { status: 200, headers: { 'content-type': 'application/json' } });
    });
    const c = new Client({ getToken: () => 't', fetch: fetch as unknown as typeof globalThis.fetch });
    const p = {} as never;
    await Promise.all([
      c.health(),
      c.checkToken(),
      c.getSchema(),
      c.putSchema({ properties: [] }),
      c.listProfiles({ filter: { logical: 'and', conditions: [] }, after: 'c1' }),
      c.getProfile('c 1'),
      c.upsertProfiles([]),
      c.deleteProfile('c1'),
      c.connectors(),
      c.listDestinations(),
      c.getDestination('d'),
      c.createDestination(p),
      c.updateDestination('d', p),
      c.deleteDestination('d'),
      c.testConnection('postgresql', {}),
      c.testSavedDestination('d'),
      c.describeTable('d', 'my table'),
      c.listPipelines('d'),
      c.getPipeline('p'),
      c.createPipeline(p),
      c.replacePipeline('p', p),
      c.patchPipeline('p', {}),
      c.deletePipeline('p'),
      c.validatePipeline(p),
      c.previewPipeline(p),
      c.functions(),
      c.filterOperators(),
      c.startRun('p'),
      c.listRuns('p', { before: 'r' }),
      c.getRun('r'),
      c.cancelRun('r'),
    ]);
    expect(calls.length).toBeGreaterThanOrEqual(31);
    for (const [method, url] of calls) {
      expect(operationOf(method, url), `${method} ${url}`).toBeDefined();
    }
  });
});
