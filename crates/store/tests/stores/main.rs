//! The store suite: every case runs against embedded SQLite and against PostgreSQL
//! (`SLUICE_TEST_POSTGRES_URL`; the PostgreSQL cases fail when it is unset, they never skip).

mod access;
mod catalog;
mod coord;
mod fixtures;
mod harness;
mod metadata;
mod profiles;
mod runs;
mod sources;
mod sync_state;

/// Instantiates each case once per backend, each with its own fresh store.
macro_rules! suite {
    ($($module:ident :: $case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let env = crate::harness::Env::new(crate::harness::Backend::Sqlite).await;
                    crate::$module::$case(&env).await;
                    env.cleanup().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let env = crate::harness::Env::new(crate::harness::Backend::Postgres).await;
                    crate::$module::$case(&env).await;
                    env.cleanup().await;
                }
            )*
        }
    };
}

suite!(
    catalog::customer_model_round_trip,
    catalog::destinations_crud_and_conflicts,
    catalog::secrets_are_encrypted_at_rest,
    catalog::wrong_secret_key_is_reported,
    catalog::reseal_secrets_moves_every_secret_to_the_new_key,
    catalog::destinations_without_a_tls_mode_keep_prefer,
    catalog::destination_in_use_is_not_deleted,
    catalog::last_connection_test_is_kept,
    catalog::pipelines_crud_and_conflicts,
    catalog::deleting_a_pipeline_cascades,
    catalog::apply_changes_is_all_or_nothing,
    runs::runs_lifecycle_and_pagination,
    runs::run_progress_never_overwrites_a_finished_run,
    runs::dry_runs_are_kept_apart_and_expire,
    sync_state::sync_apply_range_and_owners,
    sync_state::sync_apply_transfers_keys,
    sync_state::sync_keys_of_both_forms_stay_unique,
    sync_state::sync_apply_large_batches,
    sync_state::sync_counts_follow_the_entries,
    sync_state::sync_counts_follow_entries_keyed_by_id,
    sync_state::sync_records_past_the_statement_journal_spill,
    metadata::metadata_migrations_are_idempotent,
    coord::one_unfinished_run_per_pipeline,
    coord::expired_leases_are_reaped,
    coord::tick_state_compare_and_set,
    coord::last_reconcile_is_kept_per_pipeline,
    coord::change_cursor_compare_and_set,
    profiles::change_cursors_count_exactly,
    profiles::upsert_merges_into_stored_profiles,
    profiles::upsert_properties_as_maps_or_text,
    profiles::same_id_twice_in_a_batch,
    profiles::get_delete_and_count,
    profiles::pages_follow_byte_order,
    profiles::page_with_a_filter,
    profiles::concurrent_upserts_merge,
    profiles::bulk_upsert_and_scan,
    profiles::profile_migrations_are_idempotent,
    profiles::changes_since_a_mark,
    profiles::marks_hold_under_concurrent_writes,
    sync_state::sync_get_and_checkpoints,
    sync_state::sync_left_entries_round_trip,
    sync_state::sync_left_holder_gives_its_key_up,
    sync_state::sync_entries_survive_the_left_flag_migration,
    access::tokens_are_found_by_hash_and_revoked,
    access::audit_log_pages_newest_first,
    sync_state::sync_table_identity_round_trip,
    sources::sources_crud_and_conflicts,
    sources::source_runs_share_the_history,
    sources::source_marks_and_rows,
    sources::source_ticks_compare_and_set,
    sources::apply_changes_covers_sources,
);

/// Cases about PostgreSQL alone.
mod postgres_only {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn changes_are_counted_with_statistics() {
        let env = crate::harness::Env::new(crate::harness::Backend::Postgres).await;
        crate::profiles::changes_are_counted_with_statistics(&env).await;
        env.cleanup().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn marks_pass_over_other_databases() {
        let env = crate::harness::Env::new(crate::harness::Backend::Postgres).await;
        crate::profiles::marks_pass_over_other_databases(&env).await;
        env.cleanup().await;
    }
}
