//! Plain types and rules of SkyPanel with no I/O: validation, lifecycle states
//! and their transitions, money, and the sealing of secrets at rest.

pub mod acme;
pub mod billing;
pub mod clock;
pub mod credentials;
pub mod env;
pub mod events;
pub mod git;
pub mod lifecycle;
pub mod money;
pub mod names;
pub mod registry;
pub mod secrets;
pub mod signatures;

mod invalid;

pub use invalid::Invalid;

/// Instance counts an application may be scaled to (inclusive).
pub const INSTANCE_COUNT_RANGE: std::ops::RangeInclusive<i32> = 1..=10;

/// Checks an instance count against [`INSTANCE_COUNT_RANGE`].
pub fn validate_instance_count(count: i32) -> Result<i32, Invalid> {
    if INSTANCE_COUNT_RANGE.contains(&count) {
        Ok(count)
    } else {
        Err(Invalid::new(
            "instance_count",
            format!(
                "instance count must be between {} and {}, got {count}",
                INSTANCE_COUNT_RANGE.start(),
                INSTANCE_COUNT_RANGE.end()
            ),
        ))
    }
}

/// Checks a TCP port an application listens on.
pub fn validate_port(port: i32) -> Result<i32, Invalid> {
    if (1..=65535).contains(&port) {
        Ok(port)
    } else {
        Err(Invalid::new(
            "port",
            format!("port must be between 1 and 65535, got {port}"),
        ))
    }
}
