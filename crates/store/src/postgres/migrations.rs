//! The tables of both stores, as a list of migrations each: a store is at the version of the last one
//! applied, and a list only ever grows.

pub(super) const METADATA_MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE sluice_customer_model (
    id integer PRIMARY KEY CHECK (id = 1),
    model json NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE TABLE sluice_destinations (
    seq bigint GENERATED ALWAYS AS IDENTITY,
    id text PRIMARY KEY,
    name text NOT NULL CONSTRAINT sluice_destinations_name_key UNIQUE,
    kind text NOT NULL,
    settings json NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE TABLE sluice_pipelines (
    seq bigint GENERATED ALWAYS AS IDENTITY,
    id text PRIMARY KEY,
    destination text NOT NULL REFERENCES sluice_destinations (id),
    name text NOT NULL,
    spec json NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    CONSTRAINT sluice_pipelines_name_key UNIQUE (destination, name)
);
CREATE TABLE sluice_runs (
    seq bigint GENERATED ALWAYS AS IDENTITY,
    id text PRIMARY KEY,
    pipeline text NOT NULL REFERENCES sluice_pipelines (id) ON DELETE CASCADE,
    trigger text NOT NULL,
    status text NOT NULL,
    queued_at timestamptz NOT NULL,
    started_at timestamptz,
    finished_at timestamptz,
    processed bigint NOT NULL,
    total bigint,
    counts json NOT NULL,
    errors json NOT NULL,
    message text
);
CREATE INDEX sluice_runs_by_pipeline ON sluice_runs (pipeline, queued_at, seq);
CREATE INDEX sluice_runs_unfinished ON sluice_runs (queued_at, seq) WHERE status IN ('queued', 'running');
CREATE TABLE sluice_sync_state (
    pipeline text NOT NULL REFERENCES sluice_pipelines (id) ON DELETE CASCADE,
    profile_id text COLLATE "C" NOT NULL,
    key text NOT NULL,
    hash bytea NOT NULL,
    PRIMARY KEY (pipeline, profile_id)
);
CREATE UNIQUE INDEX sluice_sync_state_by_key ON sluice_sync_state (pipeline, key);
"#,
    r#"
CREATE TABLE sluice_sync_checkpoints (
    pipeline text PRIMARY KEY REFERENCES sluice_pipelines (id) ON DELETE CASCADE,
    mark bigint NOT NULL,
    fingerprint text NOT NULL,
    taken_at timestamptz NOT NULL
);
"#,
    r#"
ALTER TABLE sluice_runs ADD COLUMN owner text, ADD COLUMN lease_until timestamptz,
    ADD COLUMN cancel_requested boolean NOT NULL DEFAULT false;
UPDATE sluice_runs SET status = 'failed', finished_at = now(),
    message = 'Sluice stopped while this run was in progress; the next run will repair the table'
WHERE status IN ('queued', 'running')
  AND seq NOT IN (SELECT max(seq) FROM sluice_runs WHERE status IN ('queued', 'running') GROUP BY pipeline);
CREATE UNIQUE INDEX sluice_runs_one_unfinished ON sluice_runs (pipeline) WHERE status IN ('queued', 'running');
CREATE TABLE sluice_schedules (
    pipeline text PRIMARY KEY REFERENCES sluice_pipelines (id) ON DELETE CASCADE,
    last_tick timestamptz,
    pending boolean NOT NULL
);
"#,
    // Entries of profiles that left while their rows are kept (`SyncEntry::left`) hold true, every other
    // entry NULL, as in SQLite: adding the column rewrites nothing, and a NULL takes no room in a row (its
    // bit fits in the padding of the row header).
    r#"
ALTER TABLE sluice_sync_state ADD COLUMN has_left boolean;
"#,
    // PostgreSQL and MySQL destinations default to TLS `require` since this migration; those saved before
    // it, without a TLS mode, keep the one they had (`prefer`), written out so that it shows and stays.
    r#"
UPDATE sluice_destinations SET settings = jsonb_set(settings::jsonb, '{tls}', '{"mode": "prefer"}')::json
WHERE kind IN ('postgresql', 'mysql')
  AND (settings -> 'tls' IS NULL OR json_typeof(settings -> 'tls') = 'null'
       OR (json_typeof(settings -> 'tls') = 'string' AND btrim(settings ->> 'tls') = ''));
UPDATE sluice_destinations SET settings = jsonb_set(settings::jsonb, '{tls,mode}', '"prefer"')::json
WHERE kind IN ('postgresql', 'mysql') AND json_typeof(settings -> 'tls') = 'object'
  AND btrim(coalesce(settings -> 'tls' ->> 'mode', '')) = '';
"#,
    // API tokens are kept as the SHA-256 of their text only (see `crate::access`); the audit log is
    // numbered by `seq`, which paging follows.
    r#"
CREATE TABLE sluice_api_tokens (
    seq bigint GENERATED ALWAYS AS IDENTITY,
    id text PRIMARY KEY,
    name text NOT NULL CONSTRAINT sluice_api_tokens_name_key UNIQUE,
    role text NOT NULL,
    hash bytea NOT NULL CONSTRAINT sluice_api_tokens_hash_key UNIQUE,
    created_at timestamptz NOT NULL
);
CREATE TABLE sluice_audit_log (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at timestamptz NOT NULL,
    actor_id text NOT NULL,
    actor_name text NOT NULL,
    method text NOT NULL,
    route text NOT NULL,
    resource text,
    status integer NOT NULL,
    before json,
    after json
);
"#,
    // The identity of the table each pipeline's sync state describes, as in SQLite.
    r#"
CREATE TABLE sluice_sync_tables (
    pipeline text PRIMARY KEY REFERENCES sluice_pipelines (id) ON DELETE CASCADE,
    identity text NOT NULL
);
"#,
    // When each pipeline's last reconcile started, so that the scheduler can make a scheduled run a
    // reconcile when the pipeline's `reconcile_every` has passed since.
    r#"
CREATE TABLE sluice_reconciles (
    pipeline text PRIMARY KEY REFERENCES sluice_pipelines (id) ON DELETE CASCADE,
    started_at timestamptz NOT NULL
);
"#, // Dry runs, apart from the history (see `RunLog::put_dry_run`); the pipeline is not a reference: a
    // dry run may be of a definition not saved yet.
    r#"
CREATE TABLE sluice_dry_runs (
    id text PRIMARY KEY,
    pipeline text,
    written_at timestamptz NOT NULL,
    record text NOT NULL
);
CREATE INDEX sluice_dry_runs_by_time ON sluice_dry_runs (written_at);
"#,
    // The last connection test of each saved destination, for the home page's health column.
    r#"
CREATE TABLE sluice_destination_tests (
    destination text PRIMARY KEY REFERENCES sluice_destinations (id) ON DELETE CASCADE,
    tested_at timestamptz NOT NULL,
    ok boolean NOT NULL,
    code text,
    message text
);
"#,
    // Source pipelines (see `crate::sources`). Their runs share the history of export runs: `sluice_runs`
    // loses its foreign key to `sluice_pipelines`, a trigger checks that a run names a pipeline or a
    // source, and others delete runs with their owner.
    r#"
CREATE TABLE sluice_sources (
    seq bigint GENERATED ALWAYS AS IDENTITY,
    id text PRIMARY KEY,
    connection text NOT NULL REFERENCES sluice_destinations (id),
    name text NOT NULL CONSTRAINT sluice_sources_name_key UNIQUE,
    spec json NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE TABLE sluice_source_marks (
    source text PRIMARY KEY REFERENCES sluice_sources (id) ON DELETE CASCADE,
    mark text NOT NULL
);
CREATE TABLE sluice_source_rows (
    source text NOT NULL REFERENCES sluice_sources (id) ON DELETE CASCADE,
    profile_id text COLLATE "C" NOT NULL,
    hash bytea NOT NULL,
    seen bigint NOT NULL,
    PRIMARY KEY (source, profile_id)
);
CREATE INDEX sluice_source_rows_by_profile ON sluice_source_rows (profile_id);
CREATE TABLE sluice_source_schedules (
    source text PRIMARY KEY REFERENCES sluice_sources (id) ON DELETE CASCADE,
    last_tick timestamptz,
    pending boolean NOT NULL
);
ALTER TABLE sluice_runs DROP CONSTRAINT sluice_runs_pipeline_fkey;
CREATE FUNCTION sluice_runs_have_an_owner() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM sluice_pipelines WHERE id = NEW.pipeline)
       AND NOT EXISTS (SELECT 1 FROM sluice_sources WHERE id = NEW.pipeline) THEN
        RAISE foreign_key_violation USING MESSAGE = 'a run names no pipeline or source';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER sluice_runs_have_an_owner BEFORE INSERT ON sluice_runs
    FOR EACH ROW EXECUTE FUNCTION sluice_runs_have_an_owner();
CREATE FUNCTION sluice_runs_go_with_their_owner() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM sluice_runs WHERE pipeline = OLD.id;
    RETURN OLD;
END
$$;
CREATE TRIGGER sluice_pipeline_runs_gone AFTER DELETE ON sluice_pipelines
    FOR EACH ROW EXECUTE FUNCTION sluice_runs_go_with_their_owner();
CREATE TRIGGER sluice_source_runs_gone AFTER DELETE ON sluice_sources
    FOR EACH ROW EXECUTE FUNCTION sluice_runs_go_with_their_owner();
"#,
    // `on_change` pipelines: where the profile store's change history stood when each last started a
    // run, and what set each run off.
    r#"
CREATE TABLE sluice_change_cursors (
    pipeline text PRIMARY KEY REFERENCES sluice_pipelines (id) ON DELETE CASCADE,
    cursor text NOT NULL
);
ALTER TABLE sluice_runs ADD COLUMN changes json;
"#,
    // How many sync entries each pipeline has, live and left, kept by every write of its entries so that
    // a run's plan reads two numbers instead of counting millions of entries; the left entries (rare)
    // indexed apart, so that a write finds those it replaces without reading the others.
    r#"
CREATE TABLE sluice_sync_counts (
    pipeline text PRIMARY KEY REFERENCES sluice_pipelines (id) ON DELETE CASCADE,
    live bigint NOT NULL,
    left_ bigint NOT NULL
);
INSERT INTO sluice_sync_counts (pipeline, live, left_)
SELECT pipeline, count(*) FILTER (WHERE has_left IS NULL), count(*) FILTER (WHERE has_left)
FROM sluice_sync_state GROUP BY pipeline;
CREATE INDEX sluice_sync_state_left ON sluice_sync_state (pipeline, profile_id) WHERE has_left;
"#,
];

pub(super) const PROFILE_MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE sluice_profiles (
    id text COLLATE "C" PRIMARY KEY,
    updated_at timestamptz NOT NULL,
    doc jsonb NOT NULL
);
"#,
    r#"
ALTER TABLE sluice_profiles ADD COLUMN change_id bigint NOT NULL DEFAULT 0;
CREATE INDEX sluice_profiles_by_change ON sluice_profiles (change_id);
CREATE TABLE sluice_profile_tombstones (
    id text COLLATE "C" PRIMARY KEY,
    change_id bigint NOT NULL,
    deleted_at timestamptz NOT NULL
);
CREATE INDEX sluice_profile_tombstones_by_change ON sluice_profile_tombstones (change_id);
CREATE INDEX sluice_profile_tombstones_by_time ON sluice_profile_tombstones (deleted_at);
"#,
];
