// The one typed client of Sluice's REST API (`/v1`). Every call goes through `request`, which adds the
// bearer token, parses JSON and turns every failure into an `ApiError` carrying the server's code,
// message and per-field errors. A 401 calls the handler installed with `onUnauthorized` (the app signs
// out and shows the sign-in page).

// ---------------------------------------------------------------------------------------------------
// Types (see API.md)

export type FieldErrors = Record<string, string[]>;

export interface ErrorBody {
  code: string;
  message: string;
  fields?: FieldErrors;
}

export interface Health {
  status: string;
  version: string;
}

// Customer Model ------------------------------------------------------------------------------------

export interface PropertyDef {
  name: string;
  /** `string`, `boolean`, `int`, `float`, `decimal(p,s)`, `datetime`, `date`, `time`, `uuid`, `json`,
   *  `array(T)` or `object`. */
  type: string;
  nullable?: boolean;
  description?: string;
  /** The nested properties of an `object` (or `array(object)`). */
  properties?: PropertyDef[];
}

export interface ProfileSchema {
  properties: PropertyDef[];
}

export type Profile = { _id: string; _updated_at?: string } & Record<string, unknown>;

export interface ProfilePage {
  profiles: Profile[];
  next: string | null;
}

export interface UpsertProfilesResult {
  upserted: number;
  rejected: { index: number; _id?: string | null; errors: string[] }[];
}

// Destinations --------------------------------------------------------------------------------------

export type ConnectorFieldType = 'string' | 'integer' | 'password' | 'text' | 'tls' | 'boolean';

export interface ConnectorFieldOption {
  value: string;
  label: string;
  help?: string;
}

export interface ConnectorField {
  name: string;
  label: string;
  type: ConnectorFieldType | string;
  default?: unknown;
  /** The default when TLS is on, where it differs (ClickHouse's native TLS port). */
  tls_default?: unknown;
  required: boolean;
  secret: boolean;
  advanced?: boolean;
  help?: string;
  options?: ConnectorFieldOption[];
}

export interface Connector {
  /** The destination `type` (`postgresql`, …). */
  kind: string;
  label: string;
  description?: string;
  /** Whether this build can connect to it (cards of unavailable kinds are shown disabled). */
  available?: boolean;
  fields: ConnectorField[];
}

export type Settings = Record<string, unknown>;

export interface Destination {
  id: string;
  name: string;
  type: string;
  settings: Settings;
  created_at?: string;
  updated_at?: string;
}

export interface DestinationInput {
  name: string;
  type: string;
  settings: Settings;
}

export type TestResult =
  | { ok: true; server_version?: string | null; checks?: unknown }
  | { ok: false; error: ErrorBody };

export interface TableColumn {
  name: string;
  type: string;
  nullable: boolean;
  has_default?: boolean;
  /** False when Sluice cannot write the column's type. */
  supported?: boolean;
  /** A string, integer or UUID column that is (alone) a primary or unique key. */
  key_capable?: boolean;
}

export interface TableDescription {
  name: string;
  columns: TableColumn[];
  keys: string[][];
  primary_key?: string[] | null;
  issues: string[];
}

// Pipelines -----------------------------------------------------------------------------------------

export interface Condition {
  property: string;
  operator: string;
  values?: unknown[];
}

export interface FilterGroup {
  logical: 'and' | 'or';
  conditions: (Condition | FilterGroup)[];
}

export type Transformation = { mapping: Record<string, string> } | { javascript: string } | { python: string };

/** `1d` is accepted as a synonym of `24h`. */
export type Interval = '5m' | '15m' | '30m' | '1h' | '2h' | '3h' | '6h' | '8h' | '12h' | '24h' | '1d';
export type Schedule = null | Interval | { cron: string; timezone: string };

export type OnLeave = 'keep' | 'delete';

export interface PipelineInput {
  destination: string;
  name: string;
  description: string;
  enabled: boolean;
  filter: FilterGroup | null;
  table: string;
  key: string;
  transformation: Transformation;
  schedule: Schedule;
  on_leave: OnLeave;
  /** Webhook told when a run fails, fails too many rows, or succeeds after failing. */
  alert_webhook?: string | null;
}

export interface Pipeline extends PipelineInput {
  id: string;
  /** A readable summary of the filter, when the server provides one. */
  filter_summary?: string;
  /** The id of the run in progress, if any. */
  running?: string | null;
  last_run?: Run | null;
  next_run_at?: string | null;
  created_at?: string;
  updated_at?: string;
}

export interface FunctionInfo {
  name: string;
  signature: string;
  description: string;
}

export type PreviewAction = 'insert' | 'update' | 'unchanged' | 'skip';

export interface PreviewSample {
  profile: Profile;
  row: Record<string, unknown> | null;
  action: PreviewAction;
  error: string | null;
  reason?: string;
}

export interface PreviewResult {
  columns?: string[];
  samples: PreviewSample[];
}

// Runs ----------------------------------------------------------------------------------------------

export type RunStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';
export type RunTrigger = 'manual' | 'schedule' | 'api';

export interface RunCounts {
  read: number;
  filtered_out: number;
  transform_failed: number;
  inserted: number;
  updated: number;
  unchanged: number;
  deleted: number;
  failed: number;
}

export interface RunErrorGroup {
  step: string;
  message: string;
  count: number;
  sample_profiles: string[];
  last_seen?: string;
}

export interface Run {
  id: string;
  pipeline: string;
  trigger: RunTrigger | string;
  status: RunStatus;
  queued_at?: string;
  started_at: string | null;
  finished_at: string | null;
  duration_ms?: number | null;
  rows_per_second?: number | null;
  progress: { processed: number; total: number | null } | null;
  counts: RunCounts;
  errors: RunErrorGroup[];
  /** Why the run failed or was cancelled. */
  message?: string | null;
}

export interface RunPage {
  runs: Run[];
  next: string | null;
}

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
  health(): Promise<Health> {
    return this.request('GET', '/health');
  }

  /** Checks a token by calling an authenticated route with it. */
  async checkToken(): Promise<void> {
    await this.request('GET', '/connectors');
  }

  // Customer Model and profiles
  getSchema(): Promise<ProfileSchema> {
    return this.request('GET', '/profile-schema');
  }
  putSchema(schema: ProfileSchema): Promise<ProfileSchema> {
    return this.request('PUT', '/profile-schema', schema);
  }
  listProfiles(opts: { filter?: FilterGroup | null; limit?: number; after?: string | null } = {}): Promise<ProfilePage> {
    return this.request('GET', '/profiles', undefined, {
      filter: opts.filter ? JSON.stringify(opts.filter) : undefined,
      limit: opts.limit ?? 50,
      after: opts.after ?? undefined,
    });
  }
  getProfile(id: string): Promise<Profile> {
    return this.request('GET', `/profiles/${seg(id)}`);
  }
  upsertProfiles(profiles: Record<string, unknown>[]): Promise<UpsertProfilesResult> {
    return this.request('POST', '/profiles', { profiles });
  }
  deleteProfile(id: string): Promise<void> {
    return this.request('DELETE', `/profiles/${seg(id)}`);
  }

  // Destinations
  async connectors(): Promise<Connector[]> {
    const raw = list<Connector & { type?: string }>(await this.request('GET', '/connectors'), 'connectors');
    return raw.map((c) => ({ ...c, kind: c.kind ?? c.type ?? '' }));
  }
  async listDestinations(): Promise<Destination[]> {
    return list<Destination>(await this.request('GET', '/destinations'), 'destinations');
  }
  getDestination(id: string): Promise<Destination> {
    return this.request('GET', `/destinations/${seg(id)}`);
  }
  createDestination(d: DestinationInput): Promise<Destination> {
    return this.request('POST', '/destinations', d);
  }
  updateDestination(id: string, d: DestinationInput): Promise<Destination> {
    return this.request('PUT', `/destinations/${seg(id)}`, d);
  }
  deleteDestination(id: string): Promise<void> {
    return this.request('DELETE', `/destinations/${seg(id)}`);
  }
  testConnection(type: string, settings: Settings): Promise<TestResult> {
    return this.request('POST', '/destinations/test', { type, settings });
  }
  testSavedDestination(id: string): Promise<TestResult> {
    return this.request('POST', `/destinations/${seg(id)}/test`);
  }
  describeTable(destination: string, table: string): Promise<TableDescription> {
    return this.request('GET', `/destinations/${seg(destination)}/tables/${seg(table)}`);
  }

  // Pipelines
  async listPipelines(destination?: string): Promise<Pipeline[]> {
    return list<Pipeline>(await this.request('GET', '/pipelines', undefined, { destination }), 'pipelines');
  }
  getPipeline(id: string): Promise<Pipeline> {
    return this.request('GET', `/pipelines/${seg(id)}`);
  }
  createPipeline(p: PipelineInput): Promise<Pipeline> {
    return this.request('POST', '/pipelines', p);
  }
  replacePipeline(id: string, p: PipelineInput): Promise<Pipeline> {
    return this.request('PUT', `/pipelines/${seg(id)}`, p);
  }
  patchPipeline(id: string, changes: Partial<PipelineInput>): Promise<Pipeline> {
    return this.request('PATCH', `/pipelines/${seg(id)}`, changes);
  }
  deletePipeline(id: string): Promise<void> {
    return this.request('DELETE', `/pipelines/${seg(id)}`);
  }
  validatePipeline(p: PipelineInput): Promise<{ ok: true }> {
    return this.request('POST', '/pipelines/validate', p);
  }
  previewPipeline(p: PipelineInput, limit = 5): Promise<PreviewResult> {
    return this.request('POST', '/pipelines/preview', { pipeline: p, limit });
  }
  async functions(): Promise<FunctionInfo[]> {
    return list<FunctionInfo>(await this.request('GET', '/functions'), 'functions');
  }

  // Runs
  startRun(pipeline: string): Promise<{ id: string; status?: RunStatus }> {
    return this.request('POST', `/pipelines/${seg(pipeline)}/runs`, { trigger: 'manual' });
  }
  listRuns(pipeline: string, opts: { limit?: number; before?: string | null } = {}): Promise<RunPage> {
    return this.request('GET', `/pipelines/${seg(pipeline)}/runs`, undefined, {
      limit: opts.limit ?? 50,
      before: opts.before ?? undefined,
    });
  }
  getRun(id: string): Promise<Run> {
    return this.request('GET', `/runs/${seg(id)}`);
  }
  cancelRun(id: string): Promise<unknown> {
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
