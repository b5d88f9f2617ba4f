//! `sky`: the SkyPanel customer command line. It talks only to the public
//! API (the same one the OpenAPI spec documents), with an API token saved
//! by `sky login`. Every command takes `--json` to print the API's answer;
//! every failure is one line on standard error and a non-zero exit.

mod client;
mod commands;
mod config;
mod output;
mod run;

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
        /// Asked for (without echo) when left out on a terminal.
        #[arg(long, env = "SKY_PASSWORD", hide_env_values = true, requires = "email")]
        password: Option<String>,
        /// An API token (`spt_…`) instead of an e-mail and password.
        #[arg(long, conflicts_with_all = ["email", "password"])]
        token: Option<String>,
    },
    /// Revoke the token `sky login` made, and forget the saved credentials.
    Logout,
    /// Who the saved credentials log in as.
    Whoami,
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
        /// A GitHub repository (`owner/name`) your installation of the
        /// platform's GitHub App grants (`sky github:repos`).
        #[arg(long, conflicts_with_all = ["git", "image"])]
        github: Option<String>,
        /// The port the application listens on.
        #[arg(long)]
        port: Option<i32>,
    },
    /// Connect GitHub: prints the link that installs the platform's GitHub
    /// App on your account or organisation (it works once, for 10 minutes).
    #[command(name = "github:connect")]
    GithubConnect,
    /// Repositories your GitHub installation grants.
    #[command(name = "github:repos")]
    GithubRepos {
        /// The installation, when you connected more than one.
        #[arg(long)]
        installation: Option<i64>,
        #[arg(long, default_value_t = 1)]
        page: u32,
    },
    /// A GitHub repository's branches: `sky github:branches acme/shop`.
    #[command(name = "github:branches")]
    GithubBranches { repository: String },
    /// Make the current git repository push to an application: adds the
    /// remote (`sky` unless --remote) and lets git log in with your token.
    /// Then `git push sky main` builds and releases what you push.
    #[command(name = "git:remote")]
    GitRemote {
        app: String,
        /// The remote's name.
        #[arg(long, default_value = "sky")]
        remote: String,
    },
    /// git's credential helper for the platform's repositories (`git:remote`
    /// sets it up; git runs it).
    #[command(name = "git:credential", hide = true)]
    GitCredential { operation: String },
    /// Show an application.
    #[command(name = "apps:info")]
    AppsInfo { app: String },
    /// Delete an application, its containers, domains and logs:
    /// `sky apps:destroy shop --confirm shop`.
    #[command(name = "apps:destroy", alias = "apps:delete")]
    AppsDestroy {
        app: String,
        /// The application's name again (asked for when left out on a terminal).
        #[arg(long)]
        confirm: Option<String>,
    },
    /// Open an application's address in the browser (or print it).
    Open { app: String },
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
    #[command(name = "env:list", alias = "config")]
    EnvList { app: String },
    /// Print one variable's value, unmasked.
    #[command(name = "config:get", alias = "env:get")]
    ConfigGet { app: String, key: String },
    /// Run N web instances.
    Scale { app: String, instances: i32 },
    /// An application's processes by type: state, node, uptime, restarts.
    Ps { app: String },
    /// Scale process types: `sky ps:scale APP web=2 worker=1`.
    #[command(name = "ps:scale")]
    PsScale {
        app: String,
        #[arg(required = true)]
        counts: Vec<String>,
    },
    /// Run a command once in a new container of the release, attached to
    /// this terminal: `sky run APP -- python manage.py migrate`. Exits with
    /// the command's exit code.
    Run {
        app: String,
        /// The release to run (the current one by default).
        #[arg(long)]
        release: Option<i32>,
        /// KEY=VALUE for this run only (repeatable).
        #[arg(short = 'e', long = "env")]
        env: Vec<String>,
        /// The longest the command may run, in seconds (default 3600).
        #[arg(long)]
        ttl: Option<u32>,
        /// No terminal even when this one is (for piping).
        #[arg(long)]
        no_tty: bool,
        #[arg(required = true, last = true)]
        command: Vec<String>,
    },
    /// Run a command once in the background; its output goes to `sky logs`.
    #[command(name = "run:detached")]
    RunDetached {
        app: String,
        #[arg(long)]
        release: Option<i32>,
        #[arg(short = 'e', long = "env")]
        env: Vec<String>,
        #[arg(long)]
        ttl: Option<u32>,
        #[arg(required = true, last = true)]
        command: Vec<String>,
    },
    /// An application's one-off runs: who, what, exit code, duration.
    Runs { app: String },
    /// Stop a one-off run.
    #[command(name = "run:stop")]
    RunStop { app: String, run: i64 },
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
    /// Remove a custom domain.
    #[command(name = "domains:remove")]
    DomainsRemove { app: String, hostname: String },
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
    /// Unlink a database from an application (its variables go).
    #[command(name = "db:unlink")]
    DbUnlink { db: String, app: String },
    /// Delete a database: `sky db:delete shop-db --confirm shop-db`.
    #[command(name = "db:delete")]
    DbDelete {
        db: String,
        /// The database's name again (asked for when left out on a terminal).
        #[arg(long)]
        confirm: Option<String>,
        /// Remove its data now instead of keeping it for the retention period.
        #[arg(long)]
        purge: bool,
    },
    /// A database: status, plan, connection (no password), last backup.
    #[command(name = "db:info")]
    DbInfo { db: String },
    /// Stop a database (its data stays; not billed while stopped).
    #[command(name = "db:stop")]
    DbStop { db: String },
    /// Start a stopped database and wait until it accepts connections.
    #[command(name = "db:start")]
    DbStart { db: String },
    /// Move a database to another plan: `sky db:resize shop-db --plan 3`.
    #[command(name = "db:resize")]
    DbResize {
        db: String,
        /// The new plan's id (`sky plans` lists them).
        #[arg(long)]
        plan: i64,
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
    /// Print a completion script: `sky completions bash > /etc/bash_completion.d/sky`.
    Completions { shell: clap_complete::Shell },
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
