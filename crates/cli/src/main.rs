//! The `sluice` binary: a thin command-line layer over the other crates.
//!
//! `serve` runs the API, the UI and the runs; `quickstart` sets up a demo on embedded defaults, runs it and
//! then serves; the other commands talk to a running server over its REST API with the admin token (read
//! from the data directory when not given), so they behave exactly as the API and the UI do. The resource
//! commands (`connections`, `pipelines`, `runs`, `profiles`, `model`, `tokens`, `audit`, `status`) live in
//! `commands/`, one module per resource; the workspace commands in `workspace/`. Every failure ends with
//! the exit code of its kind (`client::ErrorKind`), listed in `sluice --help`.

mod client;
mod commands;
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
use clap::{Args, CommandFactory, Parser, Subcommand};
use clap_complete::Shell;

/// What `sluice --help` says about exit codes (README.md says the same).
const EXIT_CODES: &str = "Examples:
  sluice quickstart
  sluice connections add --name Warehouse --type postgresql --host db.internal --username sluice \\
      --database crm --password-env WAREHOUSE_PASSWORD
  sluice pipelines run \"Subscribed customers\"

Every command that talks to a server takes --url and --token (SLUICE_URL, SLUICE_ADMIN_TOKEN), and
--json to print the API's answer unchanged.

Exit codes:
  0  success
  1  failure: the server, a destination or a run failed
  2  invalid input: a usage error, an unreadable file, or the API refused the request as invalid
  3  not found: what was named does not exist
  4  conflict: a name is taken, a run is already going, a connection is still in use
  5  refused: no token, a bad one, or one whose role does not allow the request";

#[derive(Parser)]
// Every argument read from the environment hides its value in `--help`: clap otherwise prints
// `[env: SLUICE_URL=]` for an unset variable, as if it were set to nothing, and would print a set
// token in full.
#[command(
    name = "sluice",
    version,
    about = "Keep tables in your databases in step with your customer profiles",
    after_help = EXIT_CODES
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
    /// MiB that the rows between reading and writing may hold, all runs of this instance together
    /// (default 64): what bounds a run's memory whatever the batch size and the width of a row.
    #[arg(long, env = "SLUICE_ROWS_IN_FLIGHT_MIB", hide_env_values = true,
          value_parser = clap::value_parser!(u32).range(1..=1_048_576))]
    pub rows_in_flight_mib: Option<u32>,
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
    /// Dry runs going at once in this instance; they have slots of their own, so real runs never wait
    /// behind them.
    #[arg(
        long,
        env = "SLUICE_MAX_CONCURRENT_DRY_RUNS",
        hide_env_values = true,
        default_value_t = 2
    )]
    pub max_concurrent_dry_runs: usize,
    /// Dry runs that may wait for a slot; one more is refused (429 `TooManyDryRuns`).
    #[arg(
        long,
        env = "SLUICE_MAX_WAITING_DRY_RUNS",
        hide_env_values = true,
        default_value_t = 8
    )]
    pub max_waiting_dry_runs: usize,
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
    /// Seconds between two looks of the scheduler for due pipelines. Sources are looked at on their
    /// own ticks (as often as every 5 s), and at least this often.
    #[arg(
        long,
        env = "SLUICE_SCHEDULER_INTERVAL_SECONDS",
        hide_env_values = true,
        default_value_t = 5
    )]
    pub scheduler_interval_seconds: u64,
    /// An `on_change` pipeline runs once profile changes have stopped coming for this many seconds…
    #[arg(
        long,
        env = "SLUICE_ON_CHANGE_QUIET_SECONDS",
        hide_env_values = true,
        default_value_t = 2
    )]
    pub on_change_quiet_seconds: u64,
    /// …or at the latest this many seconds after the first of them, even while they keep coming.
    #[arg(
        long,
        env = "SLUICE_ON_CHANGE_MAX_WAIT_SECONDS",
        hide_env_values = true,
        default_value_t = 10
    )]
    pub on_change_max_wait_seconds: u64,
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
    #[command(
        after_help = "Examples:\n  sluice serve\n  SLUICE_METADATA_URL=postgres://sluice@db/sluice sluice serve --listen 0.0.0.0:7878"
    )]
    Serve(ServerArgs),
    /// Set up a demo on embedded defaults (sample profiles, a SQLite table, a pipeline), run it, then serve.
    #[command(
        after_help = "Examples:\n  sluice quickstart\n  sluice quickstart --profiles 1000 --no-serve"
    )]
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
    /// Connections: the databases pipelines write to (add, list, show, test, edit, delete, tables, types).
    #[command(
        visible_alias = "destinations",
        after_help = "Examples:\n  sluice connections list\n  sluice connections test Warehouse"
    )]
    Connections {
        #[command(subcommand)]
        command: commands::connections::Command,
    },
    /// Export pipelines: create, list, show, edit, enable, disable, delete, preview, validate, run, dry-run,
    /// reconcile, cancel.
    #[command(
        after_help = "Examples:\n  sluice pipelines list\n  sluice pipelines run Subscribed --dry-run"
    )]
    Pipelines {
        #[command(subcommand)]
        command: commands::pipelines::Command,
    },
    /// Source pipelines, reading a connection's table or query into the profiles: create, list, show,
    /// edit, enable, disable, delete, run, preview.
    #[command(
        after_help = "Examples:\n  sluice sources list\n  sluice sources run 'CRM customers'"
    )]
    Sources {
        #[command(subcommand)]
        command: commands::sources::Command,
    },
    /// Runs of a pipeline: list, show, errors, cancel.
    #[command(
        after_help = "Examples:\n  sluice runs list Subscribed\n  sluice runs errors run_01j9zq3k5m"
    )]
    Runs {
        #[command(subcommand)]
        command: commands::runs::Command,
    },
    /// Profiles: import, get, list with a filter, delete, delete many by filter.
    #[command(
        after_help = "Examples:\n  sluice profiles import customers.csv\n  sluice profiles get c17"
    )]
    Profiles {
        #[command(subcommand)]
        command: commands::profiles::Command,
    },
    /// The Customer Model: show it, or replace it from a file.
    #[command(after_help = "Examples:\n  sluice model show\n  sluice model edit model.yaml")]
    Model {
        #[command(subcommand)]
        command: commands::model::Command,
    },
    /// API tokens for scripts and tools: create, list, revoke, whoami.
    #[command(
        after_help = "Examples:\n  sluice tokens create --name ci --role editor\n  sluice tokens list"
    )]
    Tokens {
        #[command(subcommand)]
        command: commands::tokens::Command,
    },
    /// A connection's table or query before it becomes a source: columns, sample rows, and a proposed
    /// Customer Model and mapping (nothing is saved; editor role).
    #[command(after_help = "Examples:
  sluice inspect crm --table customers
  sluice inspect crm --query 'SELECT id, email, attrs FROM customers WHERE active' --id-column id
  sluice inspect crm --table customers --json > proposal.json")]
    Inspect(commands::inspect::Inspect),
    /// The changes made through the API, newest first (admin only).
    #[command(after_help = "Example:\n  sluice audit --limit 20")]
    Audit(commands::audit::Audit),
    /// Whether the server answers, its version, and who the token is.
    #[command(after_help = "Example:\n  sluice status --url https://sluice.internal:7878")]
    Status(commands::audit::Status),
    /// Print a shell completion script (bash, zsh or fish) to standard output.
    #[command(after_help = "Examples:
  sluice completions bash > /etc/bash_completion.d/sluice
  sluice completions zsh > \"${fpath[1]}/_sluice\"
  sluice completions fish > ~/.config/fish/completions/sluice.fish")]
    Completions { shell: Shell },
    /// Manage the key that encrypts destination secrets.
    #[command(after_help = "Example:\n  sluice secrets generate-key")]
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
    #[command(
        after_help = "Example:\n  SLUICE_NEW_SECRET_KEY=$(sluice secrets generate-key) sluice secrets rotate-key"
    )]
    RotateKey {
        #[command(flatten)]
        server: Box<ServerArgs>,
        /// The new key, when the current one is given in SLUICE_SECRET_KEY rather than kept in the data
        /// directory.
        #[arg(long, env = "SLUICE_NEW_SECRET_KEY", hide_env_values = true)]
        new_key: Option<String>,
    },
    /// Print a new random key, in the form SLUICE_SECRET_KEY takes.
    #[command(after_help = "Example:\n  sluice secrets generate-key > secret.key")]
    GenerateKey,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // The quickstart prints a summary for a reader: its log goes to a file unless SLUICE_LOG asks.
    let log_file = match &cli.command {
        Command::Quickstart { server, .. } => serve::quickstart_log(&server.data_dir),
        _ => None,
    };
    serve::init_logging(log_file);
    // Before anything opens an SQLite file (the data directory's lock is one), or SQLite refuses them.
    sluice_store::sqlite::configure_sqlite();
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
            Command::Connections { command } => command.run().await,
            Command::Pipelines { command } => command.run().await,
            Command::Sources { command } => command.run().await,
            Command::Runs { command } => command.run().await,
            Command::Profiles { command } => command.run().await,
            Command::Model { command } => command.run().await,
            Command::Tokens { command } => command.run().await,
            Command::Inspect(inspect) => inspect.run().await,
            Command::Audit(audit) => audit.run().await,
            Command::Status(status) => status.run().await,
            Command::Completions { shell } => {
                clap_complete::generate(
                    shell,
                    &mut Cli::command(),
                    "sluice",
                    &mut std::io::stdout(),
                );
                Ok(())
            }
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
            std::process::ExitCode::from(client::exit_code(&e))
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

    /// clap's own checks of the whole tree (unique argument names, valid defaults), which it otherwise
    /// makes only when a command is built: `completions` builds them all.
    #[test]
    fn the_command_tree_is_consistent() {
        Cli::command().debug_assert();
    }

    /// Walks every command: its `--help` must end with an example of it (`after_help`), so that no
    /// command is added without one.
    #[test]
    fn every_command_has_an_example_in_its_help() {
        fn walk(cmd: &clap::Command, path: &str, seen: &mut usize) {
            let path = format!("{path} {}", cmd.get_name());
            let help = cmd
                .get_after_help()
                .or(cmd.get_after_long_help())
                .map(|h| h.to_string())
                .unwrap_or_default();
            assert!(
                help.starts_with("Example") && help.contains("sluice "),
                "`{path} --help` has no example: {help:?}"
            );
            *seen += 1;
            for sub in cmd.get_subcommands() {
                walk(sub, &path, seen);
            }
        }
        let mut seen = 0;
        walk(&Cli::command(), "", &mut seen);
        assert!(seen > 40, "only {seen} commands");
    }
}
