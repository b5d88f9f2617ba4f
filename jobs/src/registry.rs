//! The platform's image registry as the control plane sees it: the tokens it
//! signs as the registry's token server (ES256 with its certificate in the
//! `x5c` header, as the CNCF distribution registry checks them), and what it
//! asks of the registry itself to keep it within its retention (an
//! application's tags, a manifest's digest, deleting a manifest).

use std::time::Duration;

use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;
use skypanel_domain::registry::RegistryAddress;

/// One grant of a registry token: `actions` on repository `name`.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct Access {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub actions: Vec<String>,
}

impl Access {
    pub fn repository(name: &str, actions: &[&str]) -> Self {
        Self {
            kind: "repository".into(),
            name: name.to_string(),
            actions: actions.iter().map(|a| a.to_string()).collect(),
        }
    }
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    /// A plain string: the registry refuses an array here.
    aud: &'a str,
    exp: i64,
    nbf: i64,
    iat: i64,
    jti: String,
    access: &'a [Access],
}

/// Signs the registry's bearer tokens.
#[derive(Clone)]
pub struct RegistryAuthority {
    key: EncodingKey,
    /// The signing certificate (DER, standard base64), as the `x5c` header carries it.
    certificate: String,
    /// The registry's `auth.token.service`.
    pub service: String,
    /// The registry's `auth.token.issuer`.
    pub issuer: String,
}

impl std::fmt::Debug for RegistryAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryAuthority")
            .field("service", &self.service)
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl RegistryAuthority {
    /// From an EC P-256 private key and its certificate, both PEM.
    pub fn from_pem(
        key_pem: &str,
        cert_pem: &str,
        service: &str,
        issuer: &str,
    ) -> Result<Self, String> {
        let key = EncodingKey::from_ec_pem(key_pem.as_bytes())
            .map_err(|e| format!("the token key is not an EC private key in PEM: {e}"))?;
        let body: String = cert_pem
            .lines()
            .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
            .skip(1)
            .take_while(|l| !l.starts_with("-----END"))
            .map(str::trim)
            .collect();
        if body.is_empty()
            || base64::engine::general_purpose::STANDARD
                .decode(&body)
                .is_err()
        {
            return Err("the token certificate is not a PEM certificate".into());
        }
        Ok(Self {
            key,
            certificate: body,
            service: service.to_string(),
            issuer: issuer.to_string(),
        })
    }

    /// A token for `subject` granting `access`, good for `ttl`.
    pub fn sign(&self, subject: &str, access: &[Access], ttl: Duration) -> Result<String, String> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            iss: &self.issuer,
            sub: subject,
            aud: &self.service,
            exp: now + ttl.as_secs() as i64,
            nbf: now - 10,
            iat: now,
            jti: uuid::Uuid::new_v4().to_string(),
            access,
        };
        let mut header = Header::new(Algorithm::ES256);
        header.typ = Some("JWT".into());
        header.x5c = Some(vec![self.certificate.clone()]);
        jsonwebtoken::encode(&header, &claims, &self.key).map_err(|e| e.to_string())
    }
}

/// Talks to the registry's HTTP API with tokens of its own.
#[derive(Clone, Debug)]
pub struct RegistryClient {
    pub address: RegistryAddress,
    authority: RegistryAuthority,
    http: reqwest::Client,
    /// `http` for a registry on loopback, else `https`.
    scheme: &'static str,
}

/// Repository names asked of the registry's catalog at a time (its default limit).
const CATALOG_PAGE: usize = 1000;

/// The manifest media types the registry answers digests for.
const MANIFEST_TYPES: &str = "application/vnd.docker.distribution.manifest.v2+json, \
     application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.oci.image.index.v1+json";

impl RegistryClient {
    pub fn new(address: RegistryAddress, authority: RegistryAuthority) -> Self {
        let host = address.host().split(':').next().unwrap_or_default();
        let loopback = host == "localhost" || host.starts_with("127.") || host == "[::1]";
        Self {
            address,
            authority,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap_or_default(),
            scheme: if loopback { "http" } else { "https" },
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}://{}/v2/{path}", self.scheme, self.address.host())
    }

    fn token(&self, repository: &str, actions: &[&str]) -> Result<String, String> {
        self.authority.sign(
            "skypanel-control-plane",
            &[Access::repository(repository, actions)],
            Duration::from_secs(120),
        )
    }

    /// The applications that have a repository in the registry.
    pub async fn applications(&self) -> Result<Vec<i64>, String> {
        let token = self.authority.sign(
            "skypanel-control-plane",
            &[Access {
                kind: "registry".into(),
                name: "catalog".into(),
                actions: vec!["*".into()],
            }],
            Duration::from_secs(120),
        )?;
        let prefix = self.address.repository_name(0);
        let prefix = prefix.trim_end_matches('0');
        let mut apps = Vec::new();
        let mut last = String::new();
        // The registry answers at most a page at a time (1,000 names by default).
        loop {
            let answer = self
                .http
                .get(self.url("_catalog"))
                .query(&[("n", CATALOG_PAGE.to_string()), ("last", last.clone())])
                .bearer_auth(&token)
                .send()
                .await
                .map_err(|e| e.to_string())?
                .error_for_status()
                .map_err(|e| e.to_string())?;
            let body: serde_json::Value = answer.json().await.map_err(|e| e.to_string())?;
            let page: Vec<String> = body["repositories"]
                .as_array()
                .map(|list| {
                    list.iter()
                        .filter_map(|r| r.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            apps.extend(
                page.iter()
                    .filter_map(|r| r.strip_prefix(prefix)?.parse::<i64>().ok()),
            );
            match page.last() {
                Some(name) if page.len() == CATALOG_PAGE => last = name.clone(),
                _ => return Ok(apps),
            }
        }
    }

    /// The tags of an application's repository (none when it has none).
    pub async fn tags(&self, app_id: i64) -> Result<Vec<String>, String> {
        let repository = self.address.repository_name(app_id);
        let answer = self
            .http
            .get(self.url(&format!("{repository}/tags/list")))
            .bearer_auth(self.token(&repository, &["pull"])?)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if answer.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(Vec::new());
        }
        let answer = answer.error_for_status().map_err(|e| e.to_string())?;
        let body: serde_json::Value = answer.json().await.map_err(|e| e.to_string())?;
        Ok(body["tags"]
            .as_array()
            .map(|tags| {
                tags.iter()
                    .filter_map(|t| t.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// The manifest digest a tag points at, if the tag exists.
    pub async fn digest(&self, app_id: i64, tag: &str) -> Result<Option<String>, String> {
        let repository = self.address.repository_name(app_id);
        let answer = self
            .http
            .head(self.url(&format!("{repository}/manifests/{tag}")))
            .header("accept", MANIFEST_TYPES)
            .bearer_auth(self.token(&repository, &["pull"])?)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if answer.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let answer = answer.error_for_status().map_err(|e| e.to_string())?;
        Ok(answer
            .headers()
            .get("docker-content-digest")
            .and_then(|d| d.to_str().ok())
            .map(str::to_string))
    }

    /// Deletes a manifest (and every tag of the repository pointing at it).
    pub async fn delete(&self, app_id: i64, digest: &str) -> Result<(), String> {
        let repository = self.address.repository_name(app_id);
        let answer = self
            .http
            .delete(self.url(&format!("{repository}/manifests/{digest}")))
            .bearer_auth(self.token(&repository, &["delete"])?)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        match answer.status().as_u16() {
            202 | 404 => Ok(()),
            status => Err(format!(
                "the registry answered {status} to deleting {repository}@{digest}"
            )),
        }
    }
}
