//! Push webhooks: what the git host is given, what it sends, what it gets.

use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object};

use super::apps::BuildView;

/// What to give the git host.
#[derive(Object, Debug)]
pub struct DeployHook {
    /// Where the git host posts its push events.
    pub url: String,
    /// Signs the events (HMAC-SHA256). Keep it secret.
    pub secret: String,
    pub content_type: String,
    pub events: Vec<String>,
}

/// The part of a push event that matters (GitHub's shape; other fields are
/// accepted and ignored).
#[derive(Object, Debug)]
pub struct PushEvent {
    /// `refs/heads/<branch>`.
    #[oai(rename = "ref")]
    pub reference: String,
    /// The commit the branch now points at.
    #[oai(nullable)]
    pub after: Option<String>,
    /// The branch was deleted.
    #[oai(nullable)]
    pub deleted: Option<bool>,
}

#[derive(ApiResponse, Debug)]
pub enum WebhookAnswer {
    /// The event was understood and does not deploy (the reason says why).
    #[oai(status = 200)]
    Ignored(Json<String>),
    /// The pushed commit is being built and deployed.
    #[oai(status = 202)]
    Deploying(Json<Box<BuildView>>),
}
