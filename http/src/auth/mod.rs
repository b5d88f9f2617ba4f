//! Authentication: customers and admins send a short-lived JWT access token or
//! a long-lived API token as `Authorization: Bearer`; agents send their node
//! credential in a header of their own.

pub mod jwt;
pub(crate) mod node;
mod principal;
mod remembered;

pub use node::{NODE_CREDENTIAL_HEADER, NodeAuth};
pub use principal::{AdminAuth, BearerAuth, Principal, Principals};
