import { describe, expect, it, vi } from 'vitest';
import { ApiError, Client, errorMessage, fieldErrors } from '../src/api';

function fakeFetch(status: number, body: unknown, headers: Record<string, string> = {}) {
  return vi.fn(async (_url: string, _init?: RequestInit) => {
    const text = body === undefined ? '' : typeof body === 'string' ? body : JSON.stringify(body);
    return new Response(status === 204 ? null : text, { status, headers: { 'content-type': 'application/json', ...headers } });
  });
}

function client(fetch: ReturnType<typeof fakeFetch>, onUnauthorized = vi.fn()) {
  return { c: new Client({ getToken: () => 'tok', fetch: fetch as unknown as typeof globalThis.fetch, onUnauthorized }), onUnauthorized };
}

describe('the API client', () => {
  it('sends the bearer token and JSON, and parses the answer', async () => {
    const f = fakeFetch(201, { id: 'dst_1', name: 'W', type: 'postgresql', settings: {} });
    const { c } = client(f);
    const d = await c.createDestination({ name: 'W', type: 'postgresql', settings: { host: 'h' } });
    expect(d.id).toBe('dst_1');
    const [url, init] = f.mock.calls[0];
    expect(url).toBe('/v1/destinations');
    expect(init?.method).toBe('POST');
    expect((init?.headers as Record<string, string>).Authorization).toBe('Bearer tok');
    expect(JSON.parse(init?.body as string)).toEqual({ name: 'W', type: 'postgresql', settings: { host: 'h' } });
  });

  it('turns a 422 into an ApiError with every field', async () => {
    const body = { error: { code: 'ValidationFailed', message: 'the request has 2 problems', fields: { 'transformation.mapping.email': ['unknown function `lowr`'], key: ['choose a column'] } } };
    const { c } = client(fakeFetch(422, body));
    const err = await c.validatePipeline({} as never).catch((e) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err.status).toBe(422);
    expect(err.code).toBe('ValidationFailed');
    expect(errorMessage(err)).toBe('the request has 2 problems');
    expect(fieldErrors(err)).toEqual(body.error.fields);
  });

  it('shows the 409 message of a destination still in use', async () => {
    const { c } = client(fakeFetch(409, { error: { code: 'DestinationInUse', message: 'destination `W` is used by 2 pipelines' } }));
    await expect(c.deleteDestination('dst_1')).rejects.toThrow('destination `W` is used by 2 pipelines');
  });

  it('calls the unauthorized handler on 401', async () => {
    const { c, onUnauthorized } = client(fakeFetch(401, { error: { code: 'Unauthorized', message: 'the bearer token is not valid' } }));
    await expect(c.listDestinations()).rejects.toMatchObject({ status: 401, code: 'Unauthorized' });
    expect(onUnauthorized).toHaveBeenCalledOnce();
  });

  it('survives answers that are not JSON and network failures', async () => {
    const { c } = client(fakeFetch(502, 'Bad Gateway from proxy', { 'content-type': 'text/plain' }));
    await expect(c.listDestinations()).rejects.toMatchObject({ status: 502, code: 'Http502', message: 'Bad Gateway from proxy' });
    const broken = vi.fn(async () => {
      throw new TypeError('Failed to fetch');
    });
    const c2 = new Client({ getToken: () => null, fetch: broken as unknown as typeof fetch });
    await expect(c2.health()).rejects.toMatchObject({ status: 0, code: 'NetworkError' });
  });

  it('encodes the profile filter and cursor in the query', async () => {
    const f = fakeFetch(200, { profiles: [], next: null });
    const { c } = client(f);
    await c.listProfiles({ filter: { logical: 'and', conditions: [{ property: 'country', operator: 'is', values: ['IT'] }] }, after: 'c 9' });
    const url = new URL(f.mock.calls[0][0], 'http://x');
    expect(url.pathname).toBe('/v1/profiles');
    expect(JSON.parse(url.searchParams.get('filter')!)).toEqual({ logical: 'and', conditions: [{ property: 'country', operator: 'is', values: ['IT'] }] });
    expect(url.searchParams.get('limit')).toBe('50');
    expect(url.searchParams.get('after')).toBe('c 9');
  });

  it('accepts lists bare or wrapped', async () => {
    expect(await client(fakeFetch(200, [{ kind: 'postgresql', label: 'PostgreSQL', fields: [] }])).c.connectors()).toHaveLength(1);
    expect(await client(fakeFetch(200, { connectors: [{ type: 'mysql', label: 'MySQL', fields: [] }] })).c.connectors()).toEqual([{ type: 'mysql', kind: 'mysql', label: 'MySQL', fields: [] }]);
    expect(await client(fakeFetch(200, { destinations: [] })).c.listDestinations()).toEqual([]);
  });

  it('escapes ids and table names in paths and starts runs as manual', async () => {
    const f = fakeFetch(200, { name: 't', columns: [], keys: [], issues: [] });
    const { c } = client(f);
    await c.describeTable('dst/1', 'my table');
    expect(f.mock.calls[0][0]).toBe('/v1/destinations/dst%2F1/tables/my%20table');
    const g = fakeFetch(202, { id: 'run_1' });
    await client(g).c.startRun('pl_1');
    expect(JSON.parse(g.mock.calls[0][1]?.body as string)).toEqual({ trigger: 'manual' });
  });

  it('returns undefined for 204', async () => {
    const { c } = client(fakeFetch(204, undefined));
    await expect(c.deletePipeline('pl_1')).resolves.toBeUndefined();
  });
});
