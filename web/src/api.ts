// The one typed client of Sluice's REST API (`/v1`). Every call goes through `request`, which adds the
// bearer token, parses JSON and turns every failure into an `ApiError` carrying the server's code,
// message and per-field errors. A 401 calls the handler installed with `onUnauthorized` (the app signs
// out and shows the sign-in page).

// ---------------------------------------------------------------------------------------------------
// Types: generated from the OpenAPI document the server serves (`src/generated/api.ts`), under the names
// the UI uses.

import type * as Gen from './generated/api';

export type { FilterOperators, OperatorInfo, TypeOperators, ValueCount } from './generated/api';

/** What an operation answers, and the body it takes, as the OpenAPI document says. */
export type Answer<K extends keyof Gen.Operations> = Gen.Operations[K]['answer'];
type BodyOf<K extends keyof Gen.Operations> = Gen.Operations[K] extends { body?: infer B } ? B : never;

export type FieldErrors = Record<string, string[]>;
export type ErrorBody = Gen.ErrorDetail;
export type Health = Gen.Health;

// Customer Model ------------------------------------------------------------------------------------

export type PropertyDef = Gen.Property;
export type ProfileSchema = Gen.ProfileSchema;
export type Profile = Gen.Profile;
export type ProfilePage = Gen.ProfilePage;
export type UpsertProfilesResult = Gen.Upserted;

// Destinations --------------------------------------------------------------------------------------

/** The API's field types, and `boolean`, which the form can show should a connector use it. */
export type ConnectorFieldType = Gen.ConnectorFieldType | 'boolean';
export type ConnectorFieldOption = Gen.ConnectorFieldOption;
export type ConnectorField = Omit<Gen.ConnectorField, 'type'> & { type: ConnectorFieldType };
export type Connector = Omit<Gen.Connector, 'fields'> & { fields: ConnectorField[] };
export type Settings = Record<string, unknown>;
export type Destination = Gen.Destination;
export type DestinationInput = Gen.DestinationBody;
export type TestResult = Gen.TestResult;
export type TableEntry = Gen.TableEntry;
export type Lineage = Gen.Lineage;
export type ModelLineage = Gen.ModelLineage;
/** A column as the server describes it; the editor also copes without the flags, which older servers
 *  did not send. */
export type TableColumn = Omit<Gen.TableColumn, 'has_default' | 'supported' | 'key_capable'> &
  Partial<Pick<Gen.TableColumn, 'has_default' | 'supported' | 'key_capable'>>;
export type TableDescription = Omit<Gen.Table, 'columns' | 'primary_key'> & { columns: TableColumn[]; primary_key?: string[] | null };

// Pipelines -----------------------------------------------------------------------------------------

export type Condition = Gen.FilterCondition;
export type FilterGroup = Gen.FilterGroup;
export type Transformation = Gen.Transformation;
/** `1d` is accepted as a synonym of `24h`. */
export type Interval = Gen.Interval;
export type Schedule = null | Gen.Schedule;
/** A source's schedule: also the short intervals (`5s` … `2m`), never `on_change`. */
export type SourceSchedule = null | Gen.SourceSchedule;
export type OnLeave = Gen.OnLeave;
export type PipelineInput = Gen.PipelineInput;
export type Pipeline = Gen.Pipeline;
export type FunctionInfo = Gen.FunctionInfo;
export type PreviewAction = Gen.PreviewAction;
export type PreviewSample = Gen.PreviewSample;
export type PreviewResult = Gen.PreviewAnswer;

// Runs ----------------------------------------------------------------------------------------------

export type RunStatus = Gen.RunStatus;
export type RunTrigger = Gen.RunTrigger;
export type RunCounts = Gen.RunCounts;
export type RunErrorGroup = Gen.RunErrorGroup;
export type Run = Gen.Run;
export type RunPage = Gen.RunList;

// Source pipelines ---------------------------------------------------------------------------------

export type Source = Gen.Source;
export type SourceInput = Gen.SourceInput;
export type SourceChanges = Gen.ChangesDoc;
export type SourcePreview = Gen.SourcePreview;
export type SourcePreviewRow = Gen.SourcePreviewRowDoc;
export type Inspection = Gen.Inspection;
export type InspectBody = Gen.InspectBody;

// Access --------------------------------------------------------------------------------------------

export type Role = Gen.Role;
export type Principal = Gen.Principal;
export type Token = Gen.Token;
export type CreatedToken = Gen.CreatedToken;
export type AuditItem = Gen.AuditItem;
export type AuditPage = Gen.AuditPage;

// ---------------------------------------------------------------------------------------------------
// Errors and transport

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly fields: FieldErrors;

  constructor(status: number, body: ErrorBody) {
    super(body.message);
    this.name = 'ApiError';
    this.status = status;
    this.code = body.code;
    this.fields = body.fields ?? {};
  }
}

/** Turns any thrown value into a sentence for the user. */
export function errorMessage(e: unknown): string {
  if (e instanceof ApiError) return e.message;
  if (e instanceof Error) return e.message;
  return String(e);
}

/** The per-field errors of a 422 (or 409) answer, or none. */
export function fieldErrors(e: unknown): FieldErrors {
  return e instanceof ApiError ? e.fields : {};
}

export interface ClientOptions {
  /** Origin and prefix of the API; `/v1` (same origin) by default. */
  base?: string;
  getToken: () => string | null;
  onUnauthorized?: (e: ApiError) => void;
  fetch?: typeof fetch;
}

type Query = Record<string, string | number | null | undefined>;

function withQuery(path: string, query?: Query): string {
  if (!query) return path;
  const parts: string[] = [];
  for (const [k, v] of Object.entries(query)) {
    if (v === undefined || v === null || v === '') continue;
    parts.push(`${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`);
  }
  return parts.length ? `${path}?${parts.join('&')}` : path;
}

const seg = encodeURIComponent;

/** Unwraps `[...]` or `{"<key>": [...]}` so that either shape of a list answer works. */
function list<T>(body: unknown, key: string): T[] {
  if (Array.isArray(body)) return body as T[];
  if (body && typeof body === 'object' && Array.isArray((body as Record<string, unknown>)[key])) {
    return (body as Record<string, T[]>)[key];
  }
  return [];
}

export class Client {
  private readonly base: string;
  private readonly opts: ClientOptions;

  constructor(opts: ClientOptions) {
    this.opts = opts;
    this.base = (opts.base ?? '/v1').replace(/\/$/, '');
  }

  /** One request; resolves with the parsed JSON body (undefined for 204), throws `ApiError`. */
  async request<T>(method: string, path: string, body?: unknown, query?: Query): Promise<T> {
    const headers: Record<string, string> = { Accept: 'application/json' };
    const token = this.opts.getToken();
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const doFetch = this.opts.fetch ?? globalThis.fetch.bind(globalThis);
    let res: Response;
    try {
      res = await doFetch(this.base + withQuery(path, query), {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      throw new ApiError(0, {
        code: 'NetworkError',
        message: `Sluice could not be reached (${e instanceof Error ? e.message : String(e)}). Is the server running?`,
      });
    }
    const text = await res.text();
    let parsed: unknown = undefined;
    if (text) {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = undefined;
      }
    }
    if (!res.ok) {
      const err = parsed && typeof parsed === 'object' ? (parsed as { error?: Partial<ErrorBody> }).error : undefined;
      const apiErr = new ApiError(res.status, {
        code: err?.code ?? `Http${res.status}`,
        message: err?.message ?? (text.trim() ? text.trim().slice(0, 300) : `${res.status} ${res.statusText || 'error'}`),
        fields: err?.fields,
      });
      if (res.status === 401) this.opts.onUnauthorized?.(apiErr);
      throw apiErr;
    }
    return parsed as T;
  }

  // Health and auth
  health(): Promise<Answer<'getHealth'>> {
    return this.request('GET', '/health');
  }

  /** Checks a token by calling an authenticated route with it. */
  async checkToken(): Promise<void> {
    await this.request('GET', '/connectors');
  }

  /** Who the token is: its name and role. */
  me(): Promise<Answer<'getMe'>> {
    return this.request('GET', '/me');
  }

  // Tokens and the audit log (admin only)
  async listTokens(): Promise<Token[]> {
    return list<Token>(await this.request<Answer<'listTokens'>>('GET', '/tokens'), 'tokens');
  }
  createToken(t: BodyOf<'createToken'>): Promise<Answer<'createToken'>> {
    return this.request('POST', '/tokens', t);
  }
  revokeToken(id: string): Promise<Answer<'revokeToken'>> {
    return this.request('DELETE', `/tokens/${seg(id)}`);
  }
  listAudit(opts: { limit?: number; before?: string | null } = {}): Promise<Answer<'listAudit'>> {
    return this.request('GET', '/audit', undefined, { limit: opts.limit ?? 50, before: opts.before ?? undefined });
  }

  // Customer Model and profiles
  getSchema(): Promise<Answer<'getProfileSchema'>> {
    return this.request('GET', '/profile-schema');
  }
  putSchema(schema: BodyOf<'putProfileSchema'>): Promise<Answer<'putProfileSchema'>> {
    return this.request('PUT', '/profile-schema', schema);
  }
  listProfiles(opts: { filter?: FilterGroup | null; limit?: number; after?: string | null } = {}): Promise<Answer<'listProfiles'>> {
    return this.request('GET', '/profiles', undefined, {
      filter: opts.filter ? JSON.stringify(opts.filter) : undefined,
      limit: opts.limit ?? 50,
      after: opts.after ?? undefined,
    });
  }
  getProfile(id: string): Promise<Answer<'getProfile'>> {
    return this.request('GET', `/profiles/${seg(id)}`);
  }
  upsertProfiles(profiles: BodyOf<'upsertProfiles'>['profiles']): Promise<Answer<'upsertProfiles'>> {
    return this.request('POST', '/profiles', { profiles });
  }
  deleteProfile(id: string): Promise<Answer<'deleteProfile'>> {
    return this.request('DELETE', `/profiles/${seg(id)}`);
  }

  // Destinations
  async connectors(): Promise<Connector[]> {
    const raw = list<Connector & { type?: string }>(await this.request('GET', '/connectors'), 'connectors');
    return raw.map((c) => ({ ...c, kind: c.kind ?? c.type ?? '' }));
  }
  async listDestinations(): Promise<Destination[]> {
    return list<Destination>(await this.request<Answer<'listDestinations'>>('GET', '/destinations'), 'destinations');
  }
  getDestination(id: string): Promise<Answer<'getDestination'>> {
    return this.request('GET', `/destinations/${seg(id)}`);
  }
  createDestination(d: BodyOf<'createDestination'>): Promise<Answer<'createDestination'>> {
    return this.request('POST', '/destinations', d);
  }
  updateDestination(id: string, d: BodyOf<'updateDestination'>): Promise<Answer<'updateDestination'>> {
    return this.request('PUT', `/destinations/${seg(id)}`, d);
  }
  deleteDestination(id: string): Promise<Answer<'deleteDestination'>> {
    return this.request('DELETE', `/destinations/${seg(id)}`);
  }
  testConnection(type: string, settings: Settings): Promise<Answer<'testConnection'>> {
    return this.request('POST', '/destinations/test', { type, settings });
  }
  testSavedDestination(id: string): Promise<Answer<'testSavedDestination'>> {
    return this.request('POST', `/destinations/${seg(id)}/test`);
  }
  listTables(destination: string): Promise<Answer<'listTables'>> {
    return this.request('GET', `/destinations/${seg(destination)}/tables`);
  }
  describeTable(destination: string, table: string): Promise<Answer<'describeTable'>> {
    return this.request('GET', `/destinations/${seg(destination)}/tables/${seg(table)}`);
  }
  destinationLineage(destination: string): Promise<Answer<'getDestinationLineage'>> {
    return this.request('GET', `/destinations/${seg(destination)}/lineage`);
  }
  schemaLineage(): Promise<Answer<'getSchemaLineage'>> {
    return this.request('GET', '/profile-schema/sources');
  }

  // Pipelines
  async listPipelines(destination?: string): Promise<Pipeline[]> {
    return list<Pipeline>(await this.request<Answer<'listPipelines'>>('GET', '/pipelines', undefined, { destination }), 'pipelines');
  }
  getPipeline(id: string): Promise<Answer<'getPipeline'>> {
    return this.request('GET', `/pipelines/${seg(id)}`);
  }
  createPipeline(p: BodyOf<'createPipeline'>): Promise<Answer<'createPipeline'>> {
    return this.request('POST', '/pipelines', p);
  }
  replacePipeline(id: string, p: BodyOf<'replacePipeline'>): Promise<Answer<'replacePipeline'>> {
    return this.request('PUT', `/pipelines/${seg(id)}`, p);
  }
  patchPipeline(id: string, changes: BodyOf<'patchPipeline'>): Promise<Answer<'patchPipeline'>> {
    return this.request('PATCH', `/pipelines/${seg(id)}`, changes);
  }
  deletePipeline(id: string): Promise<Answer<'deletePipeline'>> {
    return this.request('DELETE', `/pipelines/${seg(id)}`);
  }
  validatePipeline(p: BodyOf<'validatePipeline'>): Promise<Answer<'validatePipeline'>> {
    return this.request('POST', '/pipelines/validate', p);
  }
  previewPipeline(p: PipelineInput, limit = 5): Promise<Answer<'previewPipeline'>> {
    return this.request('POST', '/pipelines/preview', { pipeline: p, limit });
  }
  async functions(): Promise<FunctionInfo[]> {
    return list<FunctionInfo>(await this.request<Answer<'listFunctions'>>('GET', '/functions'), 'functions');
  }

  /** Which filter operators apply to which property types (the filter picker has its own copy). */
  filterOperators(): Promise<Answer<'listFilterOperators'>> {
    return this.request('GET', '/filters/operators');
  }

  // Source pipelines
  async listSources(): Promise<Source[]> {
    return list<Source>(await this.request<Answer<'listSources'>>('GET', '/sources'), 'sources');
  }
  getSource(id: string): Promise<Answer<'getSource'>> {
    return this.request('GET', `/sources/${seg(id)}`);
  }
  createSource(s: BodyOf<'createSource'>): Promise<Answer<'createSource'>> {
    return this.request('POST', '/sources', s);
  }
  replaceSource(id: string, s: BodyOf<'replaceSource'>): Promise<Answer<'replaceSource'>> {
    return this.request('PUT', `/sources/${seg(id)}`, s);
  }
  patchSource(id: string, changes: BodyOf<'patchSource'>): Promise<Answer<'patchSource'>> {
    return this.request('PATCH', `/sources/${seg(id)}`, changes);
  }
  deleteSource(id: string): Promise<Answer<'deleteSource'>> {
    return this.request('DELETE', `/sources/${seg(id)}`);
  }
  /** Columns, sample rows and a proposed Customer Model of a table or query; writes nothing. */
  inspectSource(body: BodyOf<'inspectSource'>): Promise<Answer<'inspectSource'>> {
    return this.request('POST', '/sources/inspect', body);
  }
  previewSource(source: SourceInput, limit = 10): Promise<Answer<'previewSource'>> {
    return this.request('POST', '/sources/preview', { source, limit });
  }
  startSourceRun(id: string): Promise<Answer<'startSourceRun'>> {
    return this.request('POST', `/sources/${seg(id)}/runs`, { trigger: 'manual' as const });
  }
  listSourceRuns(id: string, opts: { limit?: number; before?: string | null } = {}): Promise<Answer<'listSourceRuns'>> {
    return this.request('GET', `/sources/${seg(id)}/runs`, undefined, { limit: opts.limit ?? 50, before: opts.before ?? undefined });
  }

  // Runs
  /** Run now; `reconcile` first reads the table back and rewrites what is missing or was changed. */
  startRun(pipeline: string, mode: 'normal' | 'reconcile' = 'normal'): Promise<Answer<'startRun'>> {
    const body = mode === 'reconcile' ? { trigger: 'manual' as const, mode } : { trigger: 'manual' as const };
    return this.request('POST', `/pipelines/${seg(pipeline)}/runs`, body);
  }
  /** A dry run: what a run would do, written nowhere; read it with `getRun` (it has `samples`). */
  dryRun(pipeline: string): Promise<Answer<'startRun'>> {
    return this.request('POST', `/pipelines/${seg(pipeline)}/runs`, { trigger: 'manual' as const, dry_run: true });
  }
  listRuns(pipeline: string, opts: { limit?: number; before?: string | null } = {}): Promise<Answer<'listRuns'>> {
    return this.request('GET', `/pipelines/${seg(pipeline)}/runs`, undefined, {
      limit: opts.limit ?? 50,
      before: opts.before ?? undefined,
    });
  }
  getRun(id: string): Promise<Answer<'getRun'>> {
    return this.request('GET', `/runs/${seg(id)}`);
  }
  cancelRun(id: string): Promise<Answer<'cancelRun'>> {
    return this.request('POST', `/runs/${seg(id)}/cancel`);
  }
}

// ---------------------------------------------------------------------------------------------------
// The app's client: the token lives in sessionStorage for the browser tab's session.

const TOKEN_KEY = 'sluice.token';

export function getToken(): string | null {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

export function setToken(token: string | null): void {
  try {
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    /* storage unavailable: the token lives only in memory for this page */
  }
}

const unauthorizedListeners = new Set<() => void>();

/** Called when any request answers 401. Returns an unsubscribe function. */
export function onUnauthorized(fn: () => void): () => void {
  unauthorizedListeners.add(fn);
  return () => unauthorizedListeners.delete(fn);
}

export const api = new Client({
  getToken,
  onUnauthorized: () => {
    setToken(null);
    for (const fn of unauthorizedListeners) fn();
  },
});
