//! `sky`: the SkyPanel customer command line. It talks only to the public
//! API (the same one the OpenAPI spec documents), with an API token saved
//! by `sky login`. Every command takes `--json` to print the API's answer;
//! every failure is one line on standard error and a non-zero exit.

mod client;
mod commands;
mod config;
mod output;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The SkyPanel command line.
#[derive(Parser, Debug)]
#[command(name = "sky", version, about)]
pub struct Cli {
    /// Print the API's JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Log in and save an API token (or save the token given).
    Login {
        /// The control plane's address, such as https://paas.example.com.
        #[arg(long, env = "SKY_API")]
        api: String,
        #[arg(long, required_unless_present = "token")]
        email: Option<String>,
        #[arg(long, env = "SKY_PASSWORD", hide_env_values = true, requires = "email")]
        password: Option<String>,
        /// An API token (`spt_…`) instead of an e-mail and password.
        #[arg(long, conflicts_with_all = ["email", "password"])]
        token: Option<String>,
    },
    /// Forget the saved credentials.
    Logout,
    /// List your applications.
    Apps,
    /// Create an application.
    #[command(name = "apps:create")]
    AppsCreate {
        name: String,
        /// The plan's id (`sky plans`); optional when there is one plan.
        #[arg(long)]
        plan: Option<i64>,
        /// The region; optional when there is one region.
        #[arg(long)]
        region: Option<String>,
        /// A git repository to build from.
        #[arg(long)]
        git: Option<String>,
        #[arg(long)]
        branch: Option<String>,
        /// A ready image to run instead of building.
        #[arg(long, conflicts_with = "git")]
        image: Option<String>,
        /// The port the application listens on.
        #[arg(long)]
        port: Option<i32>,
    },
    /// Show an application.
    #[command(name = "apps:info")]
    AppsInfo { app: String },
    /// Delete an application.
    #[command(name = "apps:delete")]
    AppsDelete { app: String },
    /// Plans you can choose.
    Plans,
    /// Build and release an application, following the build's log.
    Deploy { app: String },
    /// An application's runtime logs.
    Logs {
        app: String,
        /// Keep following new lines.
        #[arg(long)]
        tail: bool,
        /// How many lines to show first.
        #[arg(short = 'n', long, default_value_t = 100)]
        lines: u32,
    },
    /// Set environment variables: KEY=VALUE … (a new release on the next deploy or restart).
    #[command(name = "env:set")]
    EnvSet {
        app: String,
        #[arg(required = true)]
        pairs: Vec<String>,
    },
    /// Remove environment variables.
    #[command(name = "env:unset")]
    EnvUnset {
        app: String,
        #[arg(required = true)]
        keys: Vec<String>,
    },
    /// List environment variables (secret values masked).
    #[command(name = "env:list")]
    EnvList { app: String },
    /// Run N instances.
    Scale { app: String, instances: i32 },
    /// Restart an application's instances one after the other.
    Restart { app: String },
    /// Stop an application.
    Stop { app: String },
    /// Start a stopped application.
    Start { app: String },
    /// An application's releases, newest first.
    Releases { app: String },
    /// Roll back to a release (the one before the current one by default).
    Rollback { app: String, version: Option<i32> },
    /// Add a custom domain.
    #[command(name = "domains:add")]
    DomainsAdd { app: String, hostname: String },
    /// An application's domains.
    #[command(name = "domains:list")]
    DomainsList { app: String },
    /// Create a managed database.
    #[command(name = "db:create")]
    DbCreate {
        name: String,
        /// postgresql, mysql, redis or mongodb.
        #[arg(long = "type")]
        db_type: String,
        #[arg(long)]
        version: String,
        #[arg(long)]
        plan: Option<i64>,
        #[arg(long)]
        region: Option<String>,
    },
    /// Your databases.
    #[command(name = "db:list")]
    DbList,
    /// Link a database into an application (DATABASE_URL …).
    #[command(name = "db:link")]
    DbLink {
        db: String,
        app: String,
        /// The variables' prefix (DATABASE by default, REDIS for Redis).
        #[arg(long)]
        prefix: Option<String>,
    },
    /// Back a database up now and wait for the backup.
    #[command(name = "db:backup")]
    DbBackup { db: String },
    /// A database's backups.
    #[command(name = "db:backups")]
    DbBackups { db: String },
    /// Restore a database from one of its backups and wait for the restore.
    #[command(name = "db:restore")]
    DbRestore { db: String, backup: i64 },
    /// Your wallet's balance and latest movements.
    Wallet,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match commands::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("sky: {err}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
