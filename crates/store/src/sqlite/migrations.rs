//! The tables of both files, as a list of migrations each: a store is at the version of the last one
//! applied, and a list only ever grows.

pub(super) const METADATA_MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE customer_model (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    model TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE destinations (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    settings TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE pipelines (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    destination TEXT NOT NULL REFERENCES destinations (id),
    name TEXT NOT NULL,
    spec TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (destination, name)
);
CREATE TABLE runs (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    pipeline TEXT NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    trigger TEXT NOT NULL,
    status TEXT NOT NULL,
    queued_at INTEGER NOT NULL,
    started_at INTEGER,
    finished_at INTEGER,
    processed INTEGER NOT NULL,
    total INTEGER,
    counts TEXT NOT NULL,
    errors TEXT NOT NULL,
    message TEXT
);
CREATE INDEX runs_by_pipeline ON runs (pipeline, queued_at, seq);
CREATE INDEX runs_unfinished ON runs (queued_at, seq) WHERE status IN ('queued', 'running');
CREATE TABLE sync_state (
    pipeline TEXT NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    profile_id TEXT NOT NULL,
    key TEXT NOT NULL,
    hash BLOB NOT NULL,
    PRIMARY KEY (pipeline, profile_id)
) WITHOUT ROWID;
CREATE UNIQUE INDEX sync_state_by_key ON sync_state (pipeline, key);
"#,
    r#"
CREATE TABLE sync_checkpoints (
    pipeline TEXT PRIMARY KEY NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    mark INTEGER NOT NULL,
    fingerprint TEXT NOT NULL,
    taken_at INTEGER NOT NULL
);
"#,
    r#"
ALTER TABLE runs ADD COLUMN owner TEXT;
ALTER TABLE runs ADD COLUMN lease_until INTEGER;
ALTER TABLE runs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
UPDATE runs SET status = 'failed', finished_at = CAST(strftime('%s', 'now') AS INTEGER) * 1000000,
    message = 'Sluice stopped while this run was in progress; the next run will repair the table'
WHERE status IN ('queued', 'running')
  AND seq NOT IN (SELECT max(seq) FROM runs WHERE status IN ('queued', 'running') GROUP BY pipeline);
CREATE UNIQUE INDEX runs_one_unfinished ON runs (pipeline) WHERE status IN ('queued', 'running');
CREATE TABLE schedules (
    pipeline TEXT PRIMARY KEY REFERENCES pipelines (id) ON DELETE CASCADE,
    last_tick INTEGER,
    pending INTEGER NOT NULL
);
"#,
    // Sync entries name their pipeline by a small number instead of its id: the id text in every key of
    // both B-trees, and a foreign-key check per entry, made recording a million entries about twice as
    // slow. The number's row holds the foreign key; deleting it (with the pipeline) drops the entries.
    r#"
CREATE TABLE sync_pipelines (
    num INTEGER PRIMARY KEY AUTOINCREMENT,
    pipeline TEXT NOT NULL UNIQUE REFERENCES pipelines (id) ON DELETE CASCADE
);
CREATE TABLE sync_entries (
    pipeline INTEGER NOT NULL,
    profile_id TEXT NOT NULL,
    key TEXT NOT NULL,
    hash BLOB NOT NULL,
    PRIMARY KEY (pipeline, profile_id)
) WITHOUT ROWID;
CREATE UNIQUE INDEX sync_entries_by_key ON sync_entries (pipeline, key);
CREATE TRIGGER sync_pipelines_gone AFTER DELETE ON sync_pipelines BEGIN
    DELETE FROM sync_entries WHERE pipeline = old.num;
END;
INSERT INTO sync_pipelines (pipeline) SELECT DISTINCT pipeline FROM sync_state ORDER BY pipeline;
INSERT INTO sync_entries (pipeline, profile_id, key, hash)
    SELECT n.num, s.profile_id, s.key, s.hash FROM sync_state s JOIN sync_pipelines n ON n.pipeline = s.pipeline;
DROP TABLE sync_state;
"#,
    // An entry whose key is its profile's id (a pipeline keyed by `_id`) stores no key, and the key
    // index, a quarter of the cost of recording a first run, holds only keys of other kinds. A pipeline records
    // which forms it holds (see `sync_apply`); existing entries all have their key written out.
    r#"
DROP TRIGGER sync_pipelines_gone;
DROP INDEX sync_entries_by_key;
ALTER TABLE sync_entries RENAME TO sync_entries_old;
CREATE TABLE sync_entries (
    pipeline INTEGER NOT NULL,
    profile_id TEXT NOT NULL,
    key TEXT,
    hash BLOB NOT NULL,
    PRIMARY KEY (pipeline, profile_id)
) WITHOUT ROWID;
INSERT INTO sync_entries (pipeline, profile_id, key, hash)
    SELECT pipeline, profile_id, key, hash FROM sync_entries_old;
DROP TABLE sync_entries_old;
CREATE UNIQUE INDEX sync_entries_by_key ON sync_entries (pipeline, key) WHERE key IS NOT NULL;
CREATE TRIGGER sync_pipelines_gone AFTER DELETE ON sync_pipelines BEGIN
    DELETE FROM sync_entries WHERE pipeline = old.num;
END;
ALTER TABLE sync_pipelines ADD COLUMN written_keys INTEGER NOT NULL DEFAULT 1;
ALTER TABLE sync_pipelines ADD COLUMN implied_keys INTEGER NOT NULL DEFAULT 0;
"#,
    // Entries of profiles that left while their rows are kept (`SyncEntry::left`) hold 1, every other
    // entry NULL: what entries written before read back, so "not left" has one form, and each entry pays
    // one byte of record header for the column (1 and NULL take no payload). The partial index holds only
    // left entries (none in most pipelines): counting them takes it, and counting the others is counting
    // all, which reads no record (reading each record's flag made a re-run of 1,000,000 unchanged rows
    // 20 ms slower).
    r#"
ALTER TABLE sync_entries ADD COLUMN has_left INTEGER;
CREATE INDEX sync_entries_left ON sync_entries (pipeline) WHERE has_left IS NOT NULL;
"#,
    // PostgreSQL and MySQL destinations default to TLS `require` since this migration; those saved before
    // it, without a TLS mode, keep the one they had (`prefer`), written out so that it shows and stays.
    r#"
UPDATE destinations SET settings = json_set(settings, '$.tls', json('{"mode": "prefer"}'))
WHERE kind IN ('postgresql', 'mysql') AND json_valid(settings)
  AND (json_type(settings, '$.tls') IS NULL OR json_type(settings, '$.tls') = 'null'
       OR (json_type(settings, '$.tls') = 'text' AND trim(json_extract(settings, '$.tls')) = ''));
UPDATE destinations SET settings = json_set(settings, '$.tls.mode', 'prefer')
WHERE kind IN ('postgresql', 'mysql') AND json_valid(settings)
  AND json_type(settings, '$.tls') = 'object'
  AND trim(coalesce(json_extract(settings, '$.tls.mode'), '')) = '';
"#,
    // API tokens are kept as the SHA-256 of their text only (see `crate::access`); the audit log is
    // numbered by `seq`, which paging follows.
    r#"
CREATE TABLE api_tokens (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    hash BLOB NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);
CREATE TABLE audit_log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    actor_id TEXT NOT NULL,
    actor_name TEXT NOT NULL,
    method TEXT NOT NULL,
    route TEXT NOT NULL,
    resource TEXT,
    status INTEGER NOT NULL,
    before TEXT,
    after TEXT
);
"#,
    // The identity of the table each pipeline's sync state describes: a table dropped and created again
    // has another one, and the sync state is then reset.
    r#"
CREATE TABLE sync_tables (
    pipeline TEXT PRIMARY KEY NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    identity TEXT NOT NULL
);
"#,
    // When each pipeline's last reconcile started, so that the scheduler can make a scheduled run a
    // reconcile when the pipeline's `reconcile_every` has passed since.
    r#"
CREATE TABLE reconciles (
    pipeline TEXT PRIMARY KEY NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    started_at INTEGER NOT NULL
);
"#, // Dry runs, apart from the history (see `RunLog::put_dry_run`); the pipeline is not a reference: a
    // dry run may be of a definition not saved yet.
    r#"
CREATE TABLE dry_runs (
    id TEXT PRIMARY KEY NOT NULL,
    pipeline TEXT,
    written_at INTEGER NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX dry_runs_by_time ON dry_runs (written_at);
"#,
    // The last connection test of each saved destination, for the home page's health column.
    r#"
CREATE TABLE destination_tests (
    destination TEXT PRIMARY KEY NOT NULL REFERENCES destinations (id) ON DELETE CASCADE,
    tested_at INTEGER NOT NULL,
    ok INTEGER NOT NULL,
    code TEXT,
    message TEXT
);
"#,
    // Source pipelines (see `crate::sources`). Their runs share the history of export runs, so `runs`
    // loses its foreign key to `pipelines` (SQLite cannot drop one but by rebuilding the table): a
    // trigger checks that a run names a pipeline or a source, and others delete runs with their owner.
    r#"
CREATE TABLE sources (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    connection TEXT NOT NULL REFERENCES destinations (id),
    name TEXT NOT NULL UNIQUE,
    spec TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE source_marks (
    source TEXT PRIMARY KEY NOT NULL REFERENCES sources (id) ON DELETE CASCADE,
    mark TEXT NOT NULL
);
CREATE TABLE source_rows (
    source TEXT NOT NULL REFERENCES sources (id) ON DELETE CASCADE,
    profile_id TEXT NOT NULL,
    hash BLOB NOT NULL,
    seen INTEGER NOT NULL,
    PRIMARY KEY (source, profile_id)
) WITHOUT ROWID;
CREATE INDEX source_rows_by_profile ON source_rows (profile_id);
CREATE TABLE source_schedules (
    source TEXT PRIMARY KEY NOT NULL REFERENCES sources (id) ON DELETE CASCADE,
    last_tick INTEGER,
    pending INTEGER NOT NULL
);
CREATE TABLE runs_rebuilt (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    pipeline TEXT NOT NULL,
    trigger TEXT NOT NULL,
    status TEXT NOT NULL,
    queued_at INTEGER NOT NULL,
    started_at INTEGER,
    finished_at INTEGER,
    processed INTEGER NOT NULL,
    total INTEGER,
    counts TEXT NOT NULL,
    errors TEXT NOT NULL,
    message TEXT,
    owner TEXT,
    lease_until INTEGER,
    cancel_requested INTEGER NOT NULL DEFAULT 0
);
INSERT INTO runs_rebuilt (seq, id, pipeline, trigger, status, queued_at, started_at, finished_at, processed,
                          total, counts, errors, message, owner, lease_until, cancel_requested)
    SELECT seq, id, pipeline, trigger, status, queued_at, started_at, finished_at, processed,
           total, counts, errors, message, owner, lease_until, cancel_requested FROM runs;
DROP TABLE runs;
ALTER TABLE runs_rebuilt RENAME TO runs;
CREATE INDEX runs_by_pipeline ON runs (pipeline, queued_at, seq);
CREATE INDEX runs_unfinished ON runs (queued_at, seq) WHERE status IN ('queued', 'running');
CREATE UNIQUE INDEX runs_one_unfinished ON runs (pipeline) WHERE status IN ('queued', 'running');
CREATE TRIGGER runs_have_an_owner BEFORE INSERT ON runs
WHEN NOT EXISTS (SELECT 1 FROM pipelines WHERE id = new.pipeline)
 AND NOT EXISTS (SELECT 1 FROM sources WHERE id = new.pipeline)
BEGIN
    SELECT RAISE(ABORT, 'FOREIGN KEY constraint failed');
END;
CREATE TRIGGER pipeline_runs_gone AFTER DELETE ON pipelines BEGIN
    DELETE FROM runs WHERE pipeline = old.id;
END;
CREATE TRIGGER source_runs_gone AFTER DELETE ON sources BEGIN
    DELETE FROM runs WHERE pipeline = old.id;
END;
"#,
    // `on_change` pipelines: where the profile store's change history stood when each last started a
    // run, and what set each run off.
    r#"
CREATE TABLE change_cursors (
    pipeline TEXT PRIMARY KEY NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    cursor TEXT NOT NULL
);
ALTER TABLE runs ADD COLUMN changes TEXT;
"#,
    // How many entries each pipeline holds, live and left, so that a run's plan reads two numbers instead
    // of counting millions of entries. `sync_apply` adds every entry it inserts; the trigger takes off
    // every entry deleted, by a delete or by `INSERT OR REPLACE` making room (which fires delete triggers
    // only under `PRAGMA recursive_triggers`, which every connection to the metadata file turns on).
    r#"
ALTER TABLE sync_pipelines ADD COLUMN live INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sync_pipelines ADD COLUMN left_ INTEGER NOT NULL DEFAULT 0;
UPDATE sync_pipelines SET
    live = (SELECT count(*) FROM sync_entries e WHERE e.pipeline = sync_pipelines.num AND e.has_left IS NULL),
    left_ = (SELECT count(*) FROM sync_entries e WHERE e.pipeline = sync_pipelines.num AND e.has_left IS NOT NULL);
CREATE TRIGGER sync_entries_removed AFTER DELETE ON sync_entries BEGIN
    UPDATE sync_pipelines SET live = live - (old.has_left IS NULL), left_ = left_ - (old.has_left IS NOT NULL)
    WHERE num = old.pipeline;
END;
"#,
    // A pipeline whose keys are implied records its entries with `INSERT … ON CONFLICT DO UPDATE`, which
    // rewrites an entry in its cell where `REPLACE` deleted and reinserted it (no B-tree rebalancing; the
    // pages are journaled and written either way, and recording 2,750 scattered entries took about as
    // long with both). `sync_apply` still adds every entry it writes; this takes off the one an entry
    // overwrites, as the delete trigger does for the one `REPLACE` removes.
    r#"
CREATE TRIGGER sync_entries_overwritten AFTER UPDATE ON sync_entries BEGIN
    UPDATE sync_pipelines SET live = live - (old.has_left IS NULL), left_ = left_ - (old.has_left IS NOT NULL)
    WHERE num = old.pipeline;
END;
"#,
];

// WITHOUT ROWID keeps the documents in the id B-tree itself, so a page is one ordered range scan instead of
// an index walk plus a table lookup per profile.
pub(super) const PROFILE_MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE profiles (
    id TEXT PRIMARY KEY NOT NULL,
    updated_at INTEGER NOT NULL,
    doc TEXT NOT NULL
) WITHOUT ROWID;
"#,
    r#"
ALTER TABLE profiles ADD COLUMN change_id INTEGER NOT NULL DEFAULT 0;
CREATE INDEX profiles_by_change ON profiles (change_id);
CREATE TABLE profile_clock (id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL);
INSERT INTO profile_clock (id, seq) VALUES (1, 0);
CREATE TABLE profile_tombstones (
    id TEXT PRIMARY KEY NOT NULL,
    change_id INTEGER NOT NULL,
    deleted_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX profile_tombstones_by_change ON profile_tombstones (change_id);
CREATE INDEX profile_tombstones_by_time ON profile_tombstones (deleted_at);
"#,
];
