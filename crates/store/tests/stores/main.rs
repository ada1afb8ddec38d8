//! The store suite: every case runs against embedded SQLite and against PostgreSQL
//! (`SLUICE_TEST_POSTGRES_URL`; the PostgreSQL cases fail when it is unset, they never skip).

mod coord;
mod harness;
mod metadata;
mod profiles;

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
    metadata::customer_model_round_trip,
    metadata::destinations_crud_and_conflicts,
    metadata::secrets_are_encrypted_at_rest,
    metadata::wrong_secret_key_is_reported,
    metadata::destination_in_use_is_not_deleted,
    metadata::pipelines_crud_and_conflicts,
    metadata::deleting_a_pipeline_cascades,
    metadata::runs_lifecycle_and_pagination,
    metadata::sync_apply_range_and_owners,
    metadata::sync_apply_transfers_keys,
    metadata::sync_keys_of_both_forms_stay_unique,
    metadata::sync_apply_large_batches,
    metadata::metadata_migrations_are_idempotent,
    coord::one_unfinished_run_per_pipeline,
    coord::expired_leases_are_reaped,
    coord::tick_state_compare_and_set,
    profiles::upsert_merges_into_stored_profiles,
    profiles::same_id_twice_in_a_batch,
    profiles::get_delete_and_count,
    profiles::pages_follow_byte_order,
    profiles::page_with_a_filter,
    profiles::concurrent_upserts_merge,
    profiles::bulk_upsert_and_scan,
    profiles::profile_migrations_are_idempotent,
    profiles::changes_since_a_mark,
    profiles::marks_hold_under_concurrent_writes,
    metadata::sync_get_and_checkpoints,
    metadata::sync_left_entries_round_trip,
    metadata::sync_left_holder_gives_its_key_up,
    metadata::sync_entries_survive_the_left_flag_migration,
);
