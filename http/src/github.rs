//! The platform's GitHub App as GitHub's REST API sees it: the App's own
//! JWT (RS256, ten minutes), installation access tokens (an hour, minted
//! when needed and never stored), the repositories an installation grants
//! and their branches, and the OAuth code exchange of the install flow that
//! proves which installations a customer can reach. github.com by default;
//! `SKYPANEL_GITHUB_API_URL` and `SKYPANEL_GITHUB_WEB_URL` name a GitHub
//! Enterprise Server.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use skypanel_domain::secrets::SecretKey;
use skypanel_store::github::{self as stored, GithubApp};

/// Where GitHub answers: its REST API and its web pages (installs, OAuth,
/// clones).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GithubUrls {
    pub api: String,
    pub web: String,
}

impl Default for GithubUrls {
    fn default() -> Self {
        Self {
            api: "https://api.github.com".into(),
            web: "https://github.com".into(),
        }
    }
}

/// The App's secrets, sealed together at rest.
#[derive(Serialize, Deserialize, Clone)]
pub struct AppSecrets {
    pub client_secret: String,
    /// The App's private key, PEM (PKCS#1 as GitHub hands it out, or PKCS#8).
    pub private_key: String,
    pub webhook_secret: String,
}

/// Why GitHub did not answer as needed, in words a customer can act on.
#[derive(Debug, thiserror::Error)]
pub enum GithubError {
    #[error("the platform has no GitHub App configured; an admin sets it at PUT /api/admin/github")]
    NotConfigured,
    #[error("GitHub cannot be reached: {0}")]
    Unreachable(String),
    #[error("GitHub refused: {status} {message}")]
    Refused { status: u16, message: String },
    #[error("GitHub has no such {0}")]
    NotFound(&'static str),
    #[error("the GitHub App's configuration does not open: {0}")]
    Broken(String),
}

/// The configured App, ready to call GitHub.
pub struct Github {
    http: reqwest::Client,
    urls: GithubUrls,
    pub app_id: i64,
    pub slug: String,
    pub client_id: String,
    secrets: AppSecrets,
}

impl std::fmt::Debug for Github {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Github")
            .field("app_id", &self.app_id)
            .field("slug", &self.slug)
            .finish_non_exhaustive()
    }
}

/// A repository an installation grants.
#[derive(Deserialize, Debug, Clone)]
pub struct Repository {
    pub full_name: String,
    pub name: String,
    #[serde(default)]
    pub private: bool,
    pub default_branch: Option<String>,
    pub owner: Account,
}

#[derive(Deserialize, Debug, Clone)]
pub struct Account {
    pub login: String,
}

/// A branch and its head commit.
#[derive(Deserialize, Debug, Clone)]
pub struct Branch {
    pub name: String,
    pub commit: BranchCommit,
    #[serde(default)]
    pub protected: bool,
}

#[derive(Deserialize, Debug, Clone)]
pub struct BranchCommit {
    pub sha: String,
}

/// An installation of the App as a user sees it.
#[derive(Deserialize, Debug, Clone)]
pub struct UserInstallation {
    pub id: i64,
    pub app_id: Option<i64>,
    pub account: Account,
}

/// One page of a list, and whether GitHub has a next one (its `Link`).
#[derive(Debug, Clone)]
pub struct Paged<T> {
    pub items: Vec<T>,
    pub total_count: Option<i64>,
    pub has_next: bool,
}

#[derive(Deserialize)]
struct InstallationRepositories {
    total_count: Option<i64>,
    repositories: Vec<Repository>,
}

#[derive(Deserialize)]
struct UserInstallations {
    installations: Vec<UserInstallation>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    token: String,
}

#[derive(Deserialize)]
struct OauthAnswer {
    access_token: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

#[derive(Deserialize)]
struct RepoInstallation {
    id: i64,
}

#[derive(Serialize)]
struct AppClaims {
    iat: i64,
    exp: i64,
    iss: String,
}

/// Whether a `Link` header names a next page.
fn has_next(headers: &reqwest::header::HeaderMap) -> bool {
    headers
        .get_all(reqwest::header::LINK)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|part| part.contains("rel=\"next\""))
}

/// An installation token's Basic credentials for git over HTTPS.
pub const TOKEN_USER: &str = "x-access-token";

/// GitHub's `owner/name`: each part 1 to 100 of letters, digits, `-`, `_`
/// and `.` (not `.` or `..`), owners without `.` or `_` at either end.
pub fn split_repository(full_name: &str) -> Option<(&str, &str)> {
    let (owner, name) = full_name.split_once('/')?;
    let part = |s: &str| {
        !s.is_empty()
            && s.len() <= 100
            && s != "."
            && s != ".."
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    };
    (part(owner) && part(name) && !owner.contains('.')).then_some((owner, name))
}

impl Github {
    /// The configured App, or `NotConfigured`.
    pub async fn load(state: &crate::state::AppState) -> Result<Github, GithubError> {
        let broken = |e: skypanel_store::Error| GithubError::Broken(e.to_string());
        let mut conn = state.store().conn().await.map_err(broken)?;
        let row = stored::app(&mut conn)
            .await
            .map_err(|e| GithubError::Broken(e.to_string()))?
            .ok_or(GithubError::NotConfigured)?;
        Self::from_row(
            row,
            state.secrets(),
            &state.settings().github,
            state.http_client(),
        )
    }

    fn from_row(
        row: GithubApp,
        key: &SecretKey,
        urls: &GithubUrls,
        http: &reqwest::Client,
    ) -> Result<Github, GithubError> {
        let opened = key
            .open_str(&row.secrets, &GithubApp::secrets_associated_data(row.id))
            .map_err(|e| GithubError::Broken(e.to_string()))?;
        let secrets: AppSecrets =
            serde_json::from_str(&opened).map_err(|e| GithubError::Broken(e.to_string()))?;
        Ok(Github {
            http: http.clone(),
            urls: urls.clone(),
            app_id: row.app_id,
            slug: row.slug,
            client_id: row.client_id,
            secrets,
        })
    }

    pub fn webhook_secret(&self) -> &str {
        &self.secrets.webhook_secret
    }

    /// Where a customer installs the App (and authorizes it), carrying `state`.
    pub fn install_url(&self, state: &str) -> String {
        format!(
            "{}/apps/{}/installations/new?state={state}",
            self.urls.web.trim_end_matches('/'),
            self.slug
        )
    }

    /// The clone URL of a repository.
    pub fn clone_url(&self, full_name: &str) -> String {
        format!("{}/{full_name}.git", self.urls.web.trim_end_matches('/'))
    }

    /// The App's JWT: RS256, issued a minute in the past (clock drift, as
    /// GitHub advises), nine minutes long.
    fn app_jwt(&self) -> Result<String, GithubError> {
        app_jwt(self.app_id, &self.secrets.private_key)
    }

    fn api(&self, path: &str) -> String {
        format!("{}{path}", self.urls.api.trim_end_matches('/'))
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        what: &'static str,
    ) -> Result<reqwest::Response, GithubError> {
        let answer = request
            .header(reqwest::header::ACCEPT, "application/vnd.github+json")
            .header("X-GitHub-Api-Version", "2022-11-28")
            .header(reqwest::header::USER_AGENT, "skypanel")
            .timeout(Duration::from_secs(20))
            .send()
            .await
            .map_err(|e| GithubError::Unreachable(e.without_url().to_string()))?;
        let status = answer.status();
        if status.as_u16() == 404 {
            return Err(GithubError::NotFound(what));
        }
        if !status.is_success() {
            #[derive(Deserialize)]
            struct Message {
                message: Option<String>,
            }
            let message = answer
                .json::<Message>()
                .await
                .ok()
                .and_then(|m| m.message)
                .unwrap_or_default();
            return Err(GithubError::Refused {
                status: status.as_u16(),
                message: message.chars().take(300).collect(),
            });
        }
        Ok(answer)
    }

    async fn json<T: for<'de> Deserialize<'de>>(
        answer: reqwest::Response,
    ) -> Result<T, GithubError> {
        answer
            .json()
            .await
            .map_err(|e| GithubError::Unreachable(format!("an unreadable answer: {e}")))
    }

    /// A fresh installation token, narrowed to one repository's contents
    /// (read) when `repository` is given. Never stored.
    pub async fn installation_token(
        &self,
        installation_id: i64,
        repository: Option<&str>,
    ) -> Result<String, GithubError> {
        let mut body = serde_json::json!({});
        if let Some((_, name)) = repository.and_then(split_repository) {
            body = serde_json::json!({
                "repositories": [name],
                "permissions": {"contents": "read"},
            });
        }
        let request = self
            .http
            .post(self.api(&format!(
                "/app/installations/{installation_id}/access_tokens"
            )))
            .bearer_auth(self.app_jwt()?)
            .json(&body);
        let answer: TokenAnswer = Self::json(self.send(request, "installation").await?).await?;
        Ok(answer.token)
    }

    /// The installation that grants a repository, if any.
    pub async fn repository_installation(
        &self,
        full_name: &str,
    ) -> Result<Option<i64>, GithubError> {
        let Some((owner, name)) = split_repository(full_name) else {
            return Ok(None);
        };
        let request = self
            .http
            .get(self.api(&format!("/repos/{owner}/{name}/installation")))
            .bearer_auth(self.app_jwt()?);
        match self.send(request, "repository").await {
            Ok(answer) => Ok(Some(Self::json::<RepoInstallation>(answer).await?.id)),
            Err(GithubError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// One page of the repositories an installation grants.
    pub async fn repositories(
        &self,
        installation_id: i64,
        page: u32,
        per_page: u32,
    ) -> Result<Paged<Repository>, GithubError> {
        let token = self.installation_token(installation_id, None).await?;
        let request = self
            .http
            .get(self.api("/installation/repositories"))
            .query(&[("page", page), ("per_page", per_page)])
            .bearer_auth(token);
        let answer = self.send(request, "installation").await?;
        let next = has_next(answer.headers());
        let list: InstallationRepositories = Self::json(answer).await?;
        Ok(Paged {
            items: list.repositories,
            total_count: list.total_count,
            has_next: next,
        })
    }

    /// One page of a repository's branches.
    pub async fn branches(
        &self,
        installation_id: i64,
        full_name: &str,
        page: u32,
        per_page: u32,
    ) -> Result<Paged<Branch>, GithubError> {
        let (owner, name) =
            split_repository(full_name).ok_or(GithubError::NotFound("repository"))?;
        let token = self
            .installation_token(installation_id, Some(full_name))
            .await?;
        let request = self
            .http
            .get(self.api(&format!("/repos/{owner}/{name}/branches")))
            .query(&[("page", page), ("per_page", per_page)])
            .bearer_auth(token);
        let answer = self.send(request, "repository").await?;
        let next = has_next(answer.headers());
        Ok(Paged {
            items: Self::json(answer).await?,
            total_count: None,
            has_next: next,
        })
    }

    /// The installations of this App that the customer who authorized
    /// (`code`, from GitHub's redirect) can reach. The code is exchanged for
    /// the customer's token, used for this one question and dropped.
    pub async fn installations_of_code(
        &self,
        code: &str,
    ) -> Result<Vec<UserInstallation>, GithubError> {
        let request = self
            .http
            .post(format!(
                "{}/login/oauth/access_token",
                self.urls.web.trim_end_matches('/')
            ))
            .form(&[
                ("client_id", self.client_id.as_str()),
                ("client_secret", self.secrets.client_secret.as_str()),
                ("code", code),
            ]);
        let answer: OauthAnswer = Self::json(self.send(request, "authorization").await?).await?;
        let token = match answer.access_token {
            Some(token) => token,
            None => {
                return Err(GithubError::Refused {
                    status: 400,
                    message: answer
                        .error_description
                        .or(answer.error)
                        .unwrap_or_else(|| "the code was not accepted".into()),
                });
            }
        };
        let mut found = Vec::new();
        for page in 1..=10_u32 {
            let request = self
                .http
                .get(self.api("/user/installations"))
                .query(&[("page", page), ("per_page", 100)])
                .bearer_auth(&token);
            let answer = self.send(request, "user").await?;
            let next = has_next(answer.headers());
            let list: UserInstallations = Self::json(answer).await?;
            found.extend(
                list.installations
                    .into_iter()
                    .filter(|i| i.app_id.is_none_or(|id| id == self.app_id)),
            );
            if !next {
                break;
            }
        }
        Ok(found)
    }
}

/// An App JWT for `app_id` signed with `private_key` (PEM).
pub fn app_jwt(app_id: i64, private_key: &str) -> Result<String, GithubError> {
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(private_key.as_bytes())
        .map_err(|e| GithubError::Broken(format!("the private key: {e}")))?;
    let now = chrono::Utc::now().timestamp();
    let claims = AppClaims {
        iat: now - 60,
        exp: now + 9 * 60,
        iss: app_id.to_string(),
    };
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &claims,
        &key,
    )
    .map_err(|e| GithubError::Broken(format!("cannot sign the App's token: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_names_are_githubs() {
        assert_eq!(split_repository("acme/web-app"), Some(("acme", "web-app")));
        assert_eq!(split_repository("a-b/c.d_e"), Some(("a-b", "c.d_e")));
        for bad in [
            "acme", "/x", "x/", "a/b/c", "a/..", "a.b/c", "a/b c", "a/b?x=1",
        ] {
            assert_eq!(split_repository(bad), None, "{bad}");
        }
    }

    #[test]
    fn next_pages_come_from_the_link_header() {
        let mut headers = reqwest::header::HeaderMap::new();
        assert!(!has_next(&headers));
        headers.insert(
            reqwest::header::LINK,
            "<https://api.github.com/x?page=3>; rel=\"next\", <https://api.github.com/x?page=9>; rel=\"last\""
                .parse()
                .unwrap(),
        );
        assert!(has_next(&headers));
        headers.insert(
            reqwest::header::LINK,
            "<https://api.github.com/x?page=1>; rel=\"prev\""
                .parse()
                .unwrap(),
        );
        assert!(!has_next(&headers));
    }
}
