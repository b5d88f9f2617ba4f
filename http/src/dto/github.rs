//! The GitHub App, installations, repositories and branches on the wire.

use chrono::{DateTime, Utc};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object};
use serde::Deserialize;
use skypanel_store::github::Installation;

/// The platform's GitHub App as an admin sets it (from the App's settings
/// page on GitHub). Secrets are sealed at rest and never shown again.
#[derive(Object, Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct SetGithubAppRequest {
    /// The App's numeric id.
    #[oai(validator(minimum(value = "1")))]
    pub app_id: i64,
    /// The App's slug (the last part of `https://github.com/apps/<slug>`).
    #[oai(validator(pattern = r"^[a-z0-9][a-z0-9-]{0,99}$"))]
    pub slug: String,
    /// The App's OAuth client id.
    #[oai(validator(min_length = 1, max_length = 100))]
    pub client_id: String,
    /// The App's OAuth client secret.
    #[oai(validator(min_length = 1, max_length = 200))]
    pub client_secret: String,
    /// The App's private key, PEM (`-----BEGIN RSA PRIVATE KEY-----` …).
    #[oai(validator(min_length = 1, max_length = 20000))]
    pub private_key: String,
    /// The secret GitHub signs the App's webhook deliveries with.
    #[oai(validator(min_length = 1, max_length = 200))]
    pub webhook_secret: String,
}

/// The platform's GitHub App (no secrets) and what to enter on GitHub.
#[derive(Object, Debug)]
pub struct GithubAppView {
    /// Whether an App is configured.
    pub configured: bool,
    #[oai(nullable)]
    pub app_id: Option<i64>,
    #[oai(nullable)]
    pub slug: Option<String>,
    #[oai(nullable)]
    pub client_id: Option<String>,
    #[oai(nullable)]
    pub updated_at: Option<DateTime<Utc>>,
    /// GitHub's REST API this platform calls (`SKYPANEL_GITHUB_API_URL`).
    pub api_url: String,
    /// GitHub's web address (`SKYPANEL_GITHUB_WEB_URL`).
    pub web_url: String,
    /// The App's "Setup URL" (and "Callback URL"): enter it on GitHub.
    pub callback_url: String,
    /// The App's "Webhook URL": enter it on GitHub.
    pub webhook_url: String,
}

/// Where to send the customer to install and authorize the App.
#[derive(Object, Debug)]
pub struct GithubAuthorize {
    /// The App's installation page on GitHub, with a single-use `state`.
    pub url: String,
    /// The `state` stops working then (10 minutes), or once used.
    pub expires_at: DateTime<Utc>,
}

#[derive(ApiResponse, Debug)]
pub enum AuthorizeAnswer {
    /// Go to GitHub (`Location`) to install and authorize the App.
    #[oai(status = 302)]
    Redirect(Json<GithubAuthorize>, #[oai(header = "Location")] String),
}

/// An installation of the App the customer connected.
#[derive(Object, Debug)]
pub struct GithubInstallationView {
    /// GitHub's installation id.
    pub installation_id: i64,
    /// The user or organisation it is installed on.
    pub account: String,
    pub connected_at: DateTime<Utc>,
}

impl From<Installation> for GithubInstallationView {
    fn from(i: Installation) -> Self {
        Self {
            installation_id: i.installation_id,
            account: i.account_login,
            connected_at: i.created_at,
        }
    }
}

/// The customer's connected installations after the callback.
#[derive(Object, Debug)]
pub struct GithubConnected {
    pub installations: Vec<GithubInstallationView>,
    pub message: String,
}

/// A repository an installation grants.
#[derive(Object, Debug)]
pub struct GithubRepositoryView {
    /// `owner/name`: what `github_repository` takes when creating an application.
    pub full_name: String,
    pub owner: String,
    pub name: String,
    pub private: bool,
    #[oai(nullable)]
    pub default_branch: Option<String>,
}

/// One page of the repositories an installation grants, as GitHub pages them.
#[derive(Object, Debug)]
pub struct GithubRepositories {
    pub installation_id: i64,
    pub page: u32,
    pub per_page: u32,
    /// How many repositories the installation grants in all, when GitHub says.
    #[oai(nullable)]
    pub total_count: Option<i64>,
    /// The next page's number; absent on the last page.
    #[oai(nullable)]
    pub next_page: Option<u32>,
    pub repositories: Vec<GithubRepositoryView>,
}

/// A branch and its head.
#[derive(Object, Debug)]
pub struct GithubBranchView {
    pub name: String,
    pub commit_sha: String,
    pub protected: bool,
}

/// One page of a repository's branches.
#[derive(Object, Debug)]
pub struct GithubBranches {
    pub repository: String,
    pub page: u32,
    pub per_page: u32,
    #[oai(nullable)]
    pub next_page: Option<u32>,
    pub branches: Vec<GithubBranchView>,
}

/// An application's GitHub repository.
#[derive(Object, Debug, Clone)]
pub struct AppGithubView {
    /// `owner/name`.
    pub repository: String,
    pub installation_id: i64,
    /// False once the installation was removed or suspended on GitHub:
    /// pushes no longer deploy and builds cannot clone.
    pub connected: bool,
    #[oai(nullable)]
    pub disconnected_at: Option<DateTime<Utc>>,
}

impl From<skypanel_store::github::AppGithub> for AppGithubView {
    fn from(g: skypanel_store::github::AppGithub) -> Self {
        Self {
            repository: g.repository,
            installation_id: g.installation_id,
            connected: g.disconnected_at.is_none(),
            disconnected_at: g.disconnected_at,
        }
    }
}

/// The parts of the App's webhook events this platform reads (push,
/// installation); other fields and events are accepted and ignored.
#[derive(Object, Debug)]
pub struct GithubEvent {
    /// push: `refs/heads/<branch>`.
    #[oai(rename = "ref", nullable)]
    pub reference: Option<String>,
    /// push: the commit the branch now points at.
    #[oai(nullable)]
    pub after: Option<String>,
    /// installation: `created`, `deleted`, `suspend`, `unsuspend`.
    #[oai(nullable)]
    pub action: Option<String>,
}

/// What a delivery did.
#[derive(Object, Debug)]
pub struct GithubDelivery {
    /// What happened, in words.
    pub message: String,
    /// The applications a push started deploying (their build ids).
    pub deploying: Vec<DeployingApp>,
    /// The applications whose deploy waits for the rollout in flight and
    /// starts after it.
    pub waiting: Vec<WaitingApp>,
}

impl GithubDelivery {
    /// A delivery that deployed nothing, and why.
    pub fn said(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            deploying: Vec::new(),
            waiting: Vec::new(),
        }
    }
}

#[derive(Object, Debug)]
pub struct DeployingApp {
    pub application_id: i64,
    pub build_id: i64,
}

#[derive(Object, Debug)]
pub struct WaitingApp {
    pub application_id: i64,
    /// 1: it runs next.
    pub position: i64,
    /// What it waits for ("the rollout of v7").
    pub behind: String,
}
