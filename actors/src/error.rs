//! `actors::Error`: why an actor refused or could not do what was asked.

use skypanel_domain::Invalid;
use skypanel_domain::lifecycle::IllegalTransition;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("not found")]
    NotFound,
    /// The command is not legal in the entity's current state.
    #[error(transparent)]
    Illegal(#[from] IllegalTransition),
    /// An input breaks a rule (e.g. nothing to deploy).
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// The request conflicts with what is recorded (e.g. cancelling a build
    /// that finished).
    #[error("{0}")]
    Conflict(String),
    /// No online node in the region has room for the work.
    #[error("{0}")]
    NoCapacity(String),
    /// The actor is down (crashed past its restart budget, or shutting down).
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Store(skypanel_store::Error),
    /// The replica owning the entity refused, for a reason that has no
    /// variant of its own here (a transition the entity's state forbids,
    /// a conflict naming a field): its code, words and field as it said them.
    #[error("{message}")]
    Refused {
        code: String,
        message: String,
        field: Option<String>,
    },
}

impl From<skypanel_store::Error> for Error {
    fn from(err: skypanel_store::Error) -> Self {
        match err {
            skypanel_store::Error::NotFound => Error::NotFound,
            skypanel_store::Error::Fenced { shard } => Error::Unavailable(format!(
                "shard {shard} moved to another control-plane replica"
            )),
            other => Error::Store(other),
        }
    }
}

impl<T> From<ractor::MessagingErr<T>> for Error {
    fn from(err: ractor::MessagingErr<T>) -> Self {
        Error::Unavailable(format!("actor unreachable: {err}"))
    }
}
