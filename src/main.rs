//! `skypanel`: the SkyPanel PaaS control plane. Subcommands: `serve` runs the
//! API (migrating first), `migrate` applies migrations, `openapi` prints the
//! spec, `admin create` creates or promotes an admin, `secrets rotate` seals
//! every secret again under the current key; `git-hook` is the applications'
//! repositories' `pre-receive` hook (git runs it).

mod config;
mod git_hook;
mod registry;
mod serve;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use skypanel_domain::{credentials, names};

use crate::config::Config;

#[derive(Parser)]
#[command(name = "skypanel", version, about = "SkyPanel PaaS control plane")]
struct Cli {
    /// A TOML file of settings (keys as the SKYPANEL_* variables, lowercase,
    /// without the prefix). The environment overrides it.
    #[arg(long, global = true, env = "SKYPANEL_CONFIG")]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the control plane (applies pending migrations first).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Print the OpenAPI document (YAML by default).
    Openapi {
        /// Write to this file instead of standard output.
        #[arg(long)]
        output: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "yaml")]
        format: SpecFormat,
    },
    /// Manage administrators.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Manage the secrets sealed at rest.
    Secrets {
        #[command(subcommand)]
        command: SecretsCommand,
    },
    /// The `pre-receive` hook of the applications' repositories (git runs it
    /// during a push; not for people).
    #[command(hide = true)]
    GitHook,
}

#[derive(Subcommand)]
enum SecretsCommand {
    /// Seal every secret (environment variables, git tokens, database
    /// passwords, webhook secrets, certificate keys, task secrets) again
    /// under SKYPANEL_SECRET_KEY, opening them with SKYPANEL_SECRET_KEYS_OLD.
    /// The control plane keeps serving meanwhile: run it with both settings
    /// first, then this, then drop the old keys.
    Rotate,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum SpecFormat {
    Yaml,
    Json,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create an admin, or make an existing user an admin with this password.
    Create {
        #[arg(long)]
        email: String,
        /// The password; better given as SKYPANEL_ADMIN_PASSWORD, which `ps` does not show.
        #[arg(long, env = "SKYPANEL_ADMIN_PASSWORD", hide_env_values = true)]
        password: String,
    },
}

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if matches!(cli.command, Command::GitHook) {
        return match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime.block_on(git_hook::run()),
            Err(err) => {
                println!(" !     the platform's hook cannot start: {err}");
                ExitCode::FAILURE
            }
        };
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("skypanel: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("skypanel: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let env: HashMap<String, String> = std::env::vars().collect();
    let file =
        match &cli.config {
            Some(path) => Some(std::fs::read_to_string(path).map_err(|e| {
                anyhow::anyhow!("cannot read the config file {}: {e}", path.display())
            })?),
            None => None,
        };
    match cli.command {
        Command::Serve => {
            let config = Config::load(&env, file.as_deref())?;
            serve::serve(config).await
        }
        Command::Migrate => {
            let url = Config::database_url(&env, file.as_deref())?;
            let store = skypanel_store::Store::connect(&url, 1)?;
            let applied = store.migrate().await?;
            if applied.is_empty() {
                println!("the database is up to date");
            } else {
                println!(
                    "applied {} migration(s): {}",
                    applied.len(),
                    applied.join(", ")
                );
            }
            Ok(())
        }
        Command::Openapi { output, format } => {
            let service = serve::spec_service()?;
            let text = match format {
                SpecFormat::Yaml => service.spec_yaml(),
                SpecFormat::Json => service.spec(),
            };
            match output {
                Some(path) => std::fs::write(&path, text)
                    .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?,
                None => print!("{text}"),
            }
            Ok(())
        }
        Command::Secrets {
            command: SecretsCommand::Rotate,
        } => rotate_secrets(&env, file.as_deref()).await,
        Command::GitHook => unreachable!("answered before the runtime starts"),
        Command::Admin {
            command: AdminCommand::Create { email, password },
        } => {
            let email = names::normalize_email(&email)
                .map_err(|e| anyhow::anyhow!("--email: {}", e.message))?;
            credentials::validate_password(&password)
                .map_err(|e| anyhow::anyhow!("--password: {}", e.message))?;
            let url = Config::database_url(&env, file.as_deref())?;
            let store = skypanel_store::Store::connect(&url, 1)?;
            store.migrate().await?;
            let hash =
                tokio::task::spawn_blocking(move || credentials::hash_password(&password)).await?;
            let mut conn = store.conn().await?;
            let (user, created) =
                skypanel_store::accounts::upsert_admin(&mut conn, &email, &hash).await?;
            let verb = if created { "created" } else { "promoted" };
            println!("{verb} admin {} (user id {})", user.email, user.id);
            Ok(())
        }
    }
}

/// `skypanel secrets rotate`: passes until no value was changed under it.
async fn rotate_secrets(env: &HashMap<String, String>, file: Option<&str>) -> anyhow::Result<()> {
    let (url, key) = Config::database_and_keys(env, file)?;
    if key.previous_count() == 0 {
        anyhow::bail!(
            "SKYPANEL_SECRET_KEYS_OLD is empty: set it to the key(s) the secrets are sealed under now, and SKYPANEL_SECRET_KEY to the new key"
        );
    }
    let store = skypanel_store::Store::connect(&url, 1)?;
    let mut conn = store.conn().await?;
    for pass in 1..=5 {
        let done = skypanel_store::rekey::rotate(&mut conn, &key).await?;
        for (column, count) in done.columns.iter().filter(|(_, n)| *n > 0) {
            println!("{column}: {count} sealed again");
        }
        println!(
            "pass {pass}: {} sealed again, {} already under the current key, {} unreadable, {} changed meanwhile",
            done.resealed,
            done.current,
            done.unreadable.len(),
            done.raced
        );
        if done.raced == 0 {
            if !done.unreadable.is_empty() {
                anyhow::bail!(
                    "{} value(s) open with none of the keys and were left as they are: {}",
                    done.unreadable.len(),
                    done.unreadable.join(", ")
                );
            }
            println!(
                "every secret is sealed under the current key: SKYPANEL_SECRET_KEYS_OLD can go at the next restart"
            );
            return Ok(());
        }
    }
    anyhow::bail!("values kept changing under the rotation; run it again")
}
