//! The `sluice` binary: a thin command-line layer over the other crates.
//!
//! `serve` runs the API, the UI and the runs; `quickstart` sets up a demo on embedded defaults, runs it and
//! then serves; the other commands talk to a running server over its REST API with the admin token (read
//! from the data directory when not given), so they behave exactly as the API and the UI do.

mod client;
mod data_dir;
mod dry_run;
mod import;
mod listener;
mod output;
mod quickstart;
mod secrets;
mod serve;
mod workspace;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
// Every argument read from the environment hides its value in `--help`: clap otherwise prints
// `[env: SLUICE_URL=]` for an unset variable, as if it were set to nothing, and would print a set
// token in full.
#[command(
    name = "sluice",
    version,
    about = "Keep tables in your databases in step with your customer profiles"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Settings shared by `serve` and `quickstart` (flags or the environment variables of API.md).
#[derive(Args, Clone, Debug)]
pub struct ServerArgs {
    /// Address to listen on.
    #[arg(
        long,
        env = "SLUICE_LISTEN",
        hide_env_values = true,
        default_value = "127.0.0.1:7878"
    )]
    pub listen: String,
    /// Where the embedded stores, the secret key and the admin token live.
    #[arg(
        long,
        env = "SLUICE_DATA_DIR",
        hide_env_values = true,
        default_value = "./sluice-data"
    )]
    pub data_dir: PathBuf,
    /// The admin token; generated on first start (and kept in the data directory) when not given.
    #[arg(long, env = "SLUICE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Key that encrypts destination secrets (base64, 32 bytes); kept in the data directory when not given.
    #[arg(long, env = "SLUICE_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<String>,
    /// PostgreSQL URL of the metadata store (embedded SQLite when not given).
    #[arg(long, env = "SLUICE_METADATA_URL", hide_env_values = true)]
    pub metadata_url: Option<String>,
    /// PostgreSQL URL of the profile store (embedded SQLite when not given).
    #[arg(long, env = "SLUICE_PROFILES_URL", hide_env_values = true)]
    pub profiles_url: Option<String>,
    /// Profiles read and rows written per batch (default: what suits the destination, 10,000 to 50,000).
    #[arg(long, env = "SLUICE_BATCH_SIZE", hide_env_values = true)]
    pub batch_size: Option<usize>,
    /// Runs going at once in this instance; more wait, queued.
    #[arg(
        long,
        env = "SLUICE_MAX_CONCURRENT_RUNS",
        hide_env_values = true,
        default_value_t = 4
    )]
    pub max_concurrent_runs: usize,
    /// Runs going at once against one destination in this instance.
    #[arg(
        long,
        env = "SLUICE_MAX_RUNS_PER_DESTINATION",
        hide_env_values = true,
        default_value_t = 2
    )]
    pub max_runs_per_destination: usize,
    /// A run fails when more than this share (0 to 1) of its rows failed.
    #[arg(
        long,
        env = "SLUICE_FAILED_ROWS_THRESHOLD",
        hide_env_values = true,
        default_value_t = 0.1
    )]
    pub failed_rows_threshold: f64,
    /// Webhook URL told about every pipeline's failed runs and recoveries.
    #[arg(long, env = "SLUICE_ALERT_WEBHOOK", hide_env_values = true)]
    pub alert_webhook: Option<String>,
    /// Seconds a run stays claimed by an instance that stopped sending heartbeats.
    #[arg(
        long,
        env = "SLUICE_RUN_LEASE_SECONDS",
        hide_env_values = true,
        default_value_t = 30
    )]
    pub run_lease_seconds: u64,
    /// Seconds between two looks of the scheduler for due pipelines.
    #[arg(
        long,
        env = "SLUICE_SCHEDULER_INTERVAL_SECONDS",
        hide_env_values = true,
        default_value_t = 5
    )]
    pub scheduler_interval_seconds: u64,
    /// Make `/metrics` ask for a token (any role), as the `/v1` routes do.
    #[arg(long, env = "SLUICE_METRICS_TOKEN_REQUIRED", hide_env_values = true, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub metrics_token_required: bool,
    /// Largest request body in bytes, for every route but profile batches.
    #[arg(long, env = "SLUICE_MAX_BODY_BYTES", hide_env_values = true, default_value_t = 1 << 20)]
    pub max_body_bytes: usize,
    /// Largest `POST /v1/profiles` body in bytes.
    #[arg(long, env = "SLUICE_MAX_PROFILES_BODY_BYTES", hide_env_values = true, default_value_t = 64 << 20)]
    pub max_profiles_body_bytes: usize,
    /// Seconds a client has to send a request's headers (and to finish a TLS handshake).
    #[arg(
        long,
        env = "SLUICE_HEADER_READ_TIMEOUT_SECONDS",
        hide_env_values = true,
        default_value_t = 10
    )]
    pub header_read_timeout_seconds: u64,
    /// Seconds a kept-alive connection may stay idle before it is closed.
    #[arg(
        long,
        env = "SLUICE_IDLE_TIMEOUT_SECONDS",
        hide_env_values = true,
        default_value_t = 60
    )]
    pub idle_timeout_seconds: u64,
    /// Connections served at once; more wait to be accepted.
    #[arg(
        long,
        env = "SLUICE_MAX_CONNECTIONS",
        hide_env_values = true,
        default_value_t = 512
    )]
    pub max_connections: usize,
    /// PEM certificate chain: serve HTTPS (with --tls-key).
    #[arg(long, env = "SLUICE_TLS_CERT", hide_env_values = true)]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of the certificate.
    #[arg(long, env = "SLUICE_TLS_KEY", hide_env_values = true)]
    pub tls_key: Option<PathBuf>,
    /// Folder SQLite destination files must live under (default: the data directory's `destinations/`).
    #[arg(long, env = "SLUICE_SQLITE_DIR", hide_env_values = true)]
    pub sqlite_dir: Option<PathBuf>,
    /// Refuse alert webhooks whose host is or resolves to a private, loopback or link-local address.
    #[arg(
        long,
        env = "SLUICE_DENY_PRIVATE_WEBHOOKS",
        hide_env_values = true,
        default_value_t = false
    )]
    pub deny_private_webhooks: bool,
    /// Workspace files (a YAML file or a folder of them) applied at start; the server does not start
    /// when they do not apply.
    #[arg(long, env = "SLUICE_WORKSPACE", hide_env_values = true)]
    pub workspace: Option<PathBuf>,
}

impl ServerArgs {
    /// The folder SQLite destinations are confined to.
    pub fn sqlite_dir(&self) -> PathBuf {
        self.sqlite_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("destinations"))
    }
}

/// How the client commands reach the server.
#[derive(Args, Clone, Debug)]
pub struct ClientArgs {
    /// Base URL of the Sluice server.
    #[arg(
        long,
        env = "SLUICE_URL",
        hide_env_values = true,
        default_value = "http://127.0.0.1:7878"
    )]
    pub url: String,
    /// The admin token (default: the one `sluice serve` keeps in the data directory).
    #[arg(long, env = "SLUICE_ADMIN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Where `sluice serve` keeps the admin token.
    #[arg(
        long,
        env = "SLUICE_DATA_DIR",
        hide_env_values = true,
        default_value = "./sluice-data"
    )]
    pub data_dir: PathBuf,
    /// PEM certificate to trust for an `https` URL, beside the usual roots: a server started with
    /// `--tls-cert` whose certificate is self-signed or from a private authority.
    #[arg(long, env = "SLUICE_CA_CERT", hide_env_values = true)]
    pub ca_cert: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the REST API, the admin UI and the runs.
    Serve(ServerArgs),
    /// Set up a demo on embedded defaults (sample profiles, a SQLite table, a pipeline), run it, then serve.
    Quickstart {
        #[command(flatten)]
        server: ServerArgs,
        /// How many sample profiles to create on the first start.
        #[arg(long, default_value_t = 10_000)]
        profiles: usize,
        /// Exit after the run instead of serving.
        #[arg(long)]
        no_serve: bool,
    },
    /// Load and manage profiles.
    Profiles {
        #[command(subcommand)]
        command: ProfilesCommand,
    },
    /// Manage and run pipelines.
    Pipelines {
        #[command(subcommand)]
        command: PipelinesCommand,
    },
    /// List destinations.
    Destinations {
        #[command(subcommand)]
        command: DestinationsCommand,
    },
    /// Manage the key that encrypts destination secrets.
    Secrets {
        #[command(subcommand)]
        command: SecretsCommand,
    },
    #[command(flatten)]
    Workspace(workspace::Command),
}

#[derive(Subcommand)]
enum SecretsCommand {
    /// Re-encrypt every stored secret under a new key (all or nothing), then put the new key in place of
    /// the old one. Stop every Sluice instance using the store first.
    RotateKey {
        #[command(flatten)]
        server: Box<ServerArgs>,
        /// The new key, when the current one is given in SLUICE_SECRET_KEY rather than kept in the data
        /// directory.
        #[arg(long, env = "SLUICE_NEW_SECRET_KEY", hide_env_values = true)]
        new_key: Option<String>,
    },
    /// Print a new random key, in the form SLUICE_SECRET_KEY takes.
    GenerateKey,
}

#[derive(Subcommand)]
enum ProfilesCommand {
    /// Import profiles from a CSV (header row of property paths) or NDJSON file, with a progress bar.
    Import {
        file: PathBuf,
        /// `csv` or `ndjson` (default: from the file extension).
        #[arg(long)]
        format: Option<String>,
        #[arg(long, default_value_t = 5_000)]
        batch_size: usize,
        /// Leave out columns (CSV) and properties (NDJSON) the Customer Model does not have, with one
        /// warning naming them, instead of rejecting the profiles that have them.
        #[arg(long)]
        ignore_unknown: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Subcommand)]
enum PipelinesCommand {
    /// List pipelines.
    List {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Run a pipeline now (by name or id) and follow it with a progress bar.
    Run {
        pipeline: String,
        /// Start the run and return without following it.
        #[arg(long)]
        no_follow: bool,
        /// Read the table back first and rewrite the rows that are missing or were changed by someone
        /// else (as `sluice pipelines reconcile`).
        #[arg(long)]
        reconcile: bool,
        /// Decide everything a run would and write nothing: print the counts a run would have and
        /// sample rows of each kind (new, updated with the columns that change, removed).
        #[arg(long, conflicts_with_all = ["reconcile", "no_follow"])]
        dry_run: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Reconcile a pipeline's table now (by name or id): read back every row Sluice wrote, rewrite the
    /// rows that are missing or were changed by someone else, and follow the run.
    Reconcile {
        pipeline: String,
        /// Start the run and return without following it.
        #[arg(long)]
        no_follow: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Subcommand)]
enum DestinationsCommand {
    /// List destinations.
    List {
        #[command(flatten)]
        client: ClientArgs,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // The quickstart prints a summary for a reader: its log goes to a file unless SLUICE_LOG asks.
    let log_file = match &cli.command {
        Command::Quickstart { server, .. } => serve::quickstart_log(&server.data_dir),
        _ => None,
    };
    serve::init_logging(log_file);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result: Result<()> = rt.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve::serve(args).await,
            Command::Quickstart {
                server,
                profiles,
                no_serve,
            } => quickstart::run(server, profiles, no_serve).await,
            Command::Profiles {
                command:
                    ProfilesCommand::Import {
                        file,
                        format,
                        batch_size,
                        ignore_unknown,
                        client,
                    },
            } => {
                import::import(
                    &client,
                    &file,
                    format.as_deref(),
                    batch_size,
                    ignore_unknown,
                )
                .await
            }
            Command::Pipelines {
                command: PipelinesCommand::List { client },
            } => client::list_pipelines(&client).await,
            Command::Pipelines {
                command:
                    PipelinesCommand::Run {
                        pipeline,
                        no_follow,
                        reconcile,
                        dry_run,
                        client,
                    },
            } => {
                if dry_run {
                    dry_run::dry_run_pipeline(&client, &pipeline).await
                } else {
                    client::run_pipeline(&client, &pipeline, !no_follow, reconcile).await
                }
            }
            Command::Pipelines {
                command:
                    PipelinesCommand::Reconcile {
                        pipeline,
                        no_follow,
                        client,
                    },
            } => client::run_pipeline(&client, &pipeline, !no_follow, true).await,
            Command::Destinations {
                command: DestinationsCommand::List { client },
            } => client::list_destinations(&client).await,
            Command::Secrets {
                command: SecretsCommand::RotateKey { server, new_key },
            } => secrets::rotate_key(&server, new_key.as_deref()).await,
            Command::Secrets {
                command: SecretsCommand::GenerateKey,
            } => {
                secrets::generate_key();
                Ok(())
            }
            Command::Workspace(command) => command.run().await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// Walks every subcommand: an argument read from the environment must not show `[env: X=]`.
    #[test]
    fn help_never_shows_an_environment_value() {
        fn walk(cmd: &clap::Command, seen: &mut usize) {
            for arg in cmd.get_arguments() {
                if arg.get_env().is_some() {
                    *seen += 1;
                    assert!(
                        arg.is_hide_env_values_set(),
                        "`{} {}` shows its environment value in --help",
                        cmd.get_name(),
                        arg.get_id()
                    );
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, seen);
            }
        }
        let mut seen = 0;
        walk(&Cli::command(), &mut seen);
        assert!(seen > 20, "only {seen} arguments read the environment");
    }
}
