//! `skypanel`: the SkyPanel PaaS control plane. Subcommands: `serve` runs the
//! API (migrating first), `migrate` applies migrations, `openapi` prints the
//! spec, `admin create` creates or promotes an admin.

mod config;
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

fn main() -> ExitCode {
    let cli = Cli::parse();
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
