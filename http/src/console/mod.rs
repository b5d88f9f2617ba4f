//! The web console: one HTML page at `/` and small plain ES modules over the
//! public REST API (no build step, no Node toolchain), embedded in the binary
//! and served under a version derived from their contents, so a browser
//! caches them for good and a new binary's page loads new ones.

use std::sync::LazyLock;

use poem::http::StatusCode;
use poem::web::{Data, Path};
use poem::{Request, Response, handler};
use poem_openapi::types::ToJSON;
use sha2::{Digest, Sha256};

use crate::state::AppState;

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

macro_rules! asset {
    ($name:literal, $type:expr) => {
        Asset {
            name: $name,
            content_type: $type,
            body: include_str!(concat!("assets/", $name)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file of the console but its page.
const ASSETS: &[Asset] = &[
    asset!("console.css", "text/css; charset=utf-8"),
    asset!("main.js", JS),
    asset!("boot.js", JS),
    asset!("api.js", JS),
    asset!("dom.js", JS),
    asset!("account.js", JS),
    asset!("apps.js", JS),
    asset!("app.js", JS),
    asset!("account_pages.js", JS),
    asset!("charts.js", JS),
    asset!("admin.js", JS),
    asset!("logview.js", JS),
];

/// The page, with `{{version}}` where the assets' folder goes.
const PAGE: &str = include_str!("assets/index.html");

/// The first 12 hex digits of the SHA-256 of every asset: the folder the
/// page loads them from.
static VERSION: LazyLock<String> = LazyLock::new(|| {
    let mut hash = Sha256::new();
    for file in ASSETS {
        hash.update(file.name.as_bytes());
        hash.update([0]);
        hash.update(file.body.as_bytes());
    }
    hex::encode(hash.finalize())[..12].to_string()
});

static RENDERED_PAGE: LazyLock<String> = LazyLock::new(|| PAGE.replace("{{version}}", &VERSION));

/// What the console's responses allow: its own scripts, styles and API,
/// nothing inline, no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

fn secured(builder: poem::ResponseBuilder) -> poem::ResponseBuilder {
    builder
        .header("content-security-policy", CONTENT_SECURITY_POLICY)
        .header("x-content-type-options", "nosniff")
        .header("referrer-policy", "same-origin")
        .header("x-frame-options", "DENY")
}

/// The console's page (every view of it: the views are `#/…` routes). It
/// carries the browser's session (who is logged in, the CSRF token) in a
/// `<meta name="skypanel-session">`, empty when logged out, so a load needs
/// no request of its own for it; left out when the session could not be
/// read (the page then asks `GET /api/auth/session`).
#[handler]
pub async fn page(request: &Request, state: Data<&AppState>) -> Response {
    let meta = match crate::api::auth::current_session(&state, request).await {
        Ok(session) => format!(
            r#"<meta name="skypanel-session" content="{}">"#,
            escape_attribute(&session.map(|s| s.to_json_string()).unwrap_or_default())
        ),
        Err(_) => String::new(),
    };
    secured(Response::builder())
        .content_type("text/html; charset=utf-8")
        .header("cache-control", "no-store")
        .body(RENDERED_PAGE.replace("{{session}}", &meta))
}

/// `text` as it may stand between an HTML attribute's double quotes.
fn escape_attribute(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// `/console/:version/:name`: an asset, cached for a year when the version
/// is the current one (its contents can never change under that name), and
/// revalidated otherwise (a page of an older binary still loads).
#[handler]
pub fn asset(Path((version, name)): Path<(String, String)>) -> Response {
    let Some(file) = ASSETS.iter().find(|a| a.name == name) else {
        return Response::builder()
            .status(StatusCode::NOT_FOUND)
            .content_type("text/plain")
            .body("no such file");
    };
    let cache = if version == *VERSION {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    secured(Response::builder())
        .content_type(file.content_type)
        .header("cache-control", cache)
        .body(file.body)
}

/// The assets' total size in bytes, by kind (for the budget test).
pub fn sizes() -> (usize, usize) {
    let js = ASSETS
        .iter()
        .filter(|a| a.name.ends_with(".js"))
        .map(|a| a.body.len())
        .sum();
    let other = ASSETS
        .iter()
        .filter(|a| !a.name.ends_with(".js"))
        .map(|a| a.body.len())
        .sum::<usize>()
        + PAGE.len();
    (js, other)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_its_assets_from_the_current_version_and_js_stays_under_200_kb() {
        assert!(RENDERED_PAGE.contains(&format!("/console/{}/main.js", *VERSION)));
        // The one place left to fill per request: the session's meta.
        assert!(!RENDERED_PAGE.replace("{{session}}", "").contains("{{"));
        let (js, _) = sizes();
        assert!(js < 200 * 1024, "{js} bytes of JavaScript");
    }

    #[test]
    fn a_session_value_never_leaves_its_attribute() {
        let name = r#"x"><script>alert('x')</script>&amp;"#;
        let escaped = escape_attribute(name);
        assert!(!escaped.contains(['"', '<', '>', '\'']), "{escaped}");
        assert_eq!(
            escaped,
            "x&quot;&gt;&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;amp;"
        );
    }

    #[test]
    fn no_asset_writes_html_from_strings() {
        // Every value reaches the page as text (dom.js builds elements);
        // nothing parses a string as HTML.
        for file in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
            for sink in [
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "document.write",
            ] {
                assert!(!file.body.contains(sink), "{} uses {sink}", file.name);
            }
        }
    }
}
