//! The actors of the control plane (ractor): one actor per node, application
//! and wallet, each serialising the changes of its entity, supervised and
//! rebuilt from PostgreSQL after a crash or a restart; the Scheduler that
//! places work on nodes; the LeaseBroker that wakes long-polling agents.
//!
//! Actors cache and serialise; PostgreSQL stays the source of truth. An actor
//! writes its transition (with a version check) before it acts outside.
//! Everything outside this crate talks to the actors through [`Orchestrator`].

mod app;
mod app_builds;
mod app_commands;
mod app_config;
mod app_events;
mod app_moves;
mod app_work;
mod beats;
mod broker;
mod context;
mod database_moves;
mod databases;
mod error;
mod images;
mod leasing;
pub mod mailboxes;
pub mod metrics;
mod node;
mod orchestrator;
mod outcomes;
mod releases;
pub mod replicas;
mod root;
pub mod runs;
mod scheduler;
pub mod shards;
mod supervisor;
mod wallet;

pub use app::{Accepted, AppRequest, AppSnapshot, CATCH_UP_EVERY, ConfigChange, Waiting};
pub use app_builds::{BuildStep, StepOutcome};
pub use broker::NodeWaiter;
pub use context::{BuildHook, Context, RegistryLogins, RegistrySettings, Settings};
pub use database_moves::{dump_file, estimate_seconds};
pub use databases::Handed;
pub use error::Error;
pub use leasing::Polled;
pub use node::UsageSample;
pub use orchestrator::{ActorInfo, Orchestrator};
pub use releases::processes_and_release_command;
pub use wallet::Movement;
