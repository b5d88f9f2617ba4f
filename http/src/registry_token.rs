//! `GET /api/registry/token`: the platform's registry's token server, as
//! Docker's token protocol wants it (not part of the platform's API). A
//! node's Docker logs in with the ticket its task carried (Basic auth,
//! `node-<id>`), asks for scopes (`repository:app-7:pull,push`), and gets a
//! signed token granting the part of them the ticket allows: only the
//! application of that task, push only for the node that pushes it. Anyone
//! else, a customer's token included, gets 401.

use std::time::Duration;

use base64::Engine;
use poem::http::StatusCode;
use poem::web::Data;
use poem::{Request, Response, handler};
use skypanel_domain::registry::Ticket;
use skypanel_jobs::registry::{Access, RegistryAuthority};

/// What the token server needs.
#[derive(Clone)]
pub struct TokenServer {
    pub authority: RegistryAuthority,
    /// The key tickets are signed with (the actors hold the same).
    pub ticket_key: Vec<u8>,
}

/// How long a registry token lasts (Docker asks again when it needs to).
const TOKEN_TTL: Duration = Duration::from_secs(300);

fn unauthorized(message: &str) -> Response {
    Response::builder()
        .status(StatusCode::UNAUTHORIZED)
        .header("content-type", "application/json")
        .header("www-authenticate", "Basic realm=\"skypanel-registry\"")
        .body(
            serde_json::json!({"code": "unauthorized", "message": message, "field": null})
                .to_string(),
        )
}

/// The Basic credentials of a request.
fn basic(request: &Request) -> Option<(String, String)> {
    let header = request.headers().get("authorization")?.to_str().ok()?;
    let encoded = header.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// The `repository:<name>:<actions>` scopes of the query (others ignored).
fn scopes(query: &str) -> Vec<(String, Vec<String>)> {
    url::form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| k == "scope")
        .flat_map(|(_, v)| {
            v.split(' ')
                .filter_map(|scope| {
                    let rest = scope.strip_prefix("repository:")?;
                    let (name, actions) = rest.rsplit_once(':')?;
                    Some((
                        name.to_string(),
                        actions.split(',').map(str::to_string).collect(),
                    ))
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

#[handler]
pub async fn token(request: &Request, server: Data<&Option<TokenServer>>) -> Response {
    let Some(server) = server.0 else {
        return Response::builder()
            .status(StatusCode::NOT_FOUND)
            .header("content-type", "application/json")
            .body(
                serde_json::json!({"code": "not_found", "message": "this platform runs no registry token server", "field": null})
                    .to_string(),
            );
    };
    let query = request.uri().query().unwrap_or_default();
    let service = url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "service")
        .map(|(_, v)| v.into_owned());
    if service
        .as_deref()
        .is_some_and(|s| s != server.authority.service)
    {
        return unauthorized("this token server does not serve that registry");
    }
    let Some((user, password)) = basic(request) else {
        return unauthorized("log in with a node's registry ticket");
    };
    let now = chrono::Utc::now();
    let Some(ticket) = Ticket::open(&server.ticket_key, &user, &password, now.timestamp()) else {
        tracing::warn!(user = %user, "registry login refused");
        return unauthorized("the registry login is not valid (or has expired)");
    };
    let access: Vec<Access> = scopes(query)
        .into_iter()
        .filter_map(|(name, wanted)| {
            let wanted: Vec<&str> = wanted.iter().map(String::as_str).collect();
            let granted = ticket.grants(&name, &wanted);
            (!granted.is_empty()).then(|| Access::repository(&name, &granted))
        })
        .collect();
    let token = match server.authority.sign(&user, &access, TOKEN_TTL) {
        Ok(token) => token,
        Err(err) => {
            tracing::error!(error = %err, "cannot sign a registry token");
            return Response::builder()
                .status(StatusCode::INTERNAL_SERVER_ERROR)
                .header("content-type", "application/json")
                .body(
                    serde_json::json!({"code": "internal_error", "message": "cannot sign a registry token", "field": null})
                        .to_string(),
                );
        }
    };
    tracing::debug!(
        node_id = ticket.node_id,
        grants = access.len(),
        "registry token issued"
    );
    let body = serde_json::json!({
        "token": token,
        "access_token": token,
        "expires_in": TOKEN_TTL.as_secs(),
        "issued_at": now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    });
    Response::builder()
        .header("content-type", "application/json")
        .body(body.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_read_from_every_scope_parameter() {
        let query = "account=node-1&scope=repository%3Aapp-7%3Apush%2Cpull&scope=repository:x/app-8:pull&service=s&scope=registry:catalog:*";
        assert_eq!(
            scopes(query),
            vec![
                (
                    "app-7".to_string(),
                    vec!["push".to_string(), "pull".to_string()]
                ),
                ("x/app-8".to_string(), vec!["pull".to_string()]),
            ]
        );
    }
}
