//! Wire types of the public API: request bodies (serde, parsed by `JsonBody`)
//! and response objects, converted from row models with `From`. Field names are
//! snake_case; money travels as decimal strings; secrets never appear here
//! except where a value is shown once or revealed to its owner on request.

pub mod accounts;
pub mod admin;
pub mod apps;
pub mod backups;
pub mod billing;
pub mod catalog;
pub mod databases;
pub mod domains;
pub mod github;
pub mod hooks;
pub mod inspector;
pub mod nodes;
pub mod observe;
pub mod runs;
pub mod wallet;
pub mod webhooks;

use poem_openapi::Object;

/// Answer of an accepted action that has no other body.
#[derive(Object, Debug)]
pub struct Message {
    pub message: String,
}
