//! Authentication: customers and admins send a short-lived JWT access token or
//! a long-lived API token as `Authorization: Bearer`, or, from the web
//! console, a session cookie with a CSRF header; agents send their node
//! credential in a header of their own.

pub mod jwt;
pub(crate) mod node;
mod principal;
mod remembered;
pub mod session;

pub use node::{NODE_CREDENTIAL_HEADER, NodeAuth, node_of};
pub(crate) use principal::authenticate_token;
pub use principal::{AdminAuth, BearerAuth, Principal, Principals, admin_of};
