//! Wire types of the agent protocol (HTTP task leases), shared by the control
//! plane and `skypanel-agent`, and the naming conventions both sides rely on.
//! No I/O. With the `openapi` feature the types also describe themselves for
//! the control plane's OpenAPI document.

pub mod database;
pub mod image;
pub mod lease_stream;
pub mod limits;
pub mod metrics;
pub mod names;
pub mod node;
pub mod procfile;
pub mod session;
pub mod task;

/// The header carrying a node's credential on every agent call after registration.
pub const CREDENTIAL_HEADER: &str = "X-SkyPanel-Node-Credential";
/// The longest a lease request may wait for a task, in seconds.
pub const MAX_LEASE_WAIT_SECS: u64 = 60;
