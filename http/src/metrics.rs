//! `GET /metrics`: the control plane's metrics in Prometheus' text format,
//! for an admin's bearer token (a Prometheus scrape job sends an admin's
//! `spt_` API token). What the process counted as it went (requests by
//! route template, tasks, heartbeats, billing runs) and what is counted at
//! the scrape (unfinished tasks, nodes, containers, applications and
//! databases by state, job queues, actors and their restarts). Requests are
//! labelled by the route template they matched (the OpenAPI document's
//! paths and the few routes outside it), never by a raw path: ids and
//! unknown paths cannot make new series.

use std::sync::OnceLock;

use poem::web::Data;
use poem::{Request, Response, handler};
use skypanel_protocol::metrics::{Metrics, global};
use skypanel_store::reports;

use crate::state::AppState;

/// Routes outside the OpenAPI document, as templates (`*`: anything after).
const OTHER_ROUTES: [&str; 13] = [
    "/",
    "/admin",
    "/admin/inspector",
    "/metrics",
    "/api/openapi.json",
    "/api/openapi.yaml",
    "/api/docs/*",
    "/api/registry/token",
    "/api/paas/runs/{run}/session",
    "/api/internal/paas/runs/{run}/session",
    "/api/internal/paas/database-moves/{id}/dump",
    "/api/internal/paas/nodes/{id}/lease-stream",
    "/console/*",
];

static ROUTES: OnceLock<Vec<String>> = OnceLock::new();

/// Remembers the API's route templates from its OpenAPI document (JSON),
/// once per process.
pub fn learn_routes(spec_json: impl FnOnce() -> String) {
    ROUTES.get_or_init(|| {
        let spec: serde_json::Value = serde_json::from_str(&spec_json()).unwrap_or_default();
        let mut routes: Vec<String> = spec["paths"]
            .as_object()
            .map(|paths| paths.keys().map(|p| format!("/api{p}")).collect())
            .unwrap_or_default();
        routes.extend(OTHER_ROUTES.iter().map(|r| r.to_string()));
        routes.push("/git/*".into());
        routes
    });
}

/// The route template `path` matches, or `unmatched`.
pub fn route_of(path: &str) -> &'static str {
    let Some(routes) = ROUTES.get() else {
        return "unmatched";
    };
    routes
        .iter()
        .find(|template| matches(template, path))
        .map_or("unmatched", String::as_str)
}

fn matches(template: &str, path: &str) -> bool {
    if let Some(prefix) = template.strip_suffix("/*") {
        return path == prefix || path.starts_with(&format!("{prefix}/"));
    }
    let mut wanted = template.split('/');
    let mut given = path.split('/');
    loop {
        match (wanted.next(), given.next()) {
            (None, None) => return true,
            (Some(w), Some(g)) if w.starts_with('{') && !g.is_empty() => {}
            (Some(w), Some(g)) if w == g => {}
            _ => return false,
        }
    }
}

/// Counts a request and its time.
pub fn record(method: &str, path: &str, status: u16, seconds: f64) {
    let route = route_of(path);
    let status = status.to_string();
    global().inc(
        "skypanel_http_requests_total",
        "HTTP requests answered, by method, route template and status.",
        &[("method", method), ("route", route), ("status", &status)],
    );
    global().observe(
        "skypanel_http_request_duration_seconds",
        "Time to answer an HTTP request, by method and route template (long-polls included).",
        &[("method", method), ("route", route)],
        seconds,
    );
}

/// `GET /metrics`.
#[handler]
pub async fn scrape(request: &Request, Data(state): Data<&AppState>) -> Response {
    if let Err(err) = crate::auth::admin_of(request).await {
        return err.into_response();
    }
    let now = Metrics::default();
    counted_now(state, &now).await;
    Response::builder()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .header("cache-control", "no-store")
        .body(format!("{}{}", global().render(), now.render()))
}

/// What is counted at the scrape; a part that cannot be had is left out
/// (and `skypanel_scrape_errors` says which).
async fn counted_now(state: &AppState, now: &Metrics) {
    now.set(
        "skypanel_build_info",
        "The control plane's version.",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1.0,
    );
    let counts = async {
        let mut conn = state.store().conn().await?;
        reports::state_counts(&mut conn).await
    };
    match counts.await {
        Ok(counts) => {
            for c in counts {
                let value = c.count as f64;
                let state = c.state.as_str();
                match c.what.as_str() {
                    "tasks" => now.set(
                        "skypanel_tasks",
                        "Unfinished tasks by status (queued, leased, running) and kind.",
                        &[("status", state), ("kind", &c.kind)],
                        value,
                    ),
                    "nodes" => now.set(
                        "skypanel_nodes",
                        "Nodes by status.",
                        &[("status", state)],
                        value,
                    ),
                    "containers" => now.set(
                        "skypanel_containers",
                        "Application containers by state, as their nodes last reported.",
                        &[("state", state)],
                        value,
                    ),
                    "applications" => now.set(
                        "skypanel_applications",
                        "Applications by status.",
                        &[("status", state)],
                        value,
                    ),
                    _ => now.set(
                        "skypanel_databases",
                        "Managed databases by status.",
                        &[("status", state)],
                        value,
                    ),
                }
            }
        }
        Err(err) => scrape_error(now, "database", &err),
    }
    let ownership = async {
        let mut conn = state.store().conn().await?;
        skypanel_store::shards::ownership(&mut conn).await
    };
    match ownership.await {
        Ok(replicas) => {
            let me = state
                .orchestrator()
                .ok()
                .map(|o| o.context().shards().replica());
            for r in replicas {
                let replica = r.replica.to_string();
                let this = if Some(r.replica) == me {
                    "true"
                } else {
                    "false"
                };
                now.set(
                    "skypanel_shards_owned",
                    "Shard leases each control-plane replica holds (of 64), by replica; `this` marks the replica answering.",
                    &[("replica", &replica), ("hostname", &r.hostname), ("this", this)],
                    r.shards as f64,
                );
            }
        }
        Err(err) => scrape_error(now, "database", &err),
    }
    match state.queues() {
        Ok(queues) => match queues.overview().await {
            Ok(list) => {
                for q in list {
                    for (job_state, n) in [
                        ("pending", q.pending),
                        ("running", q.running),
                        ("done", q.done),
                        ("failed", q.failed),
                        ("dead", q.dead),
                    ] {
                        now.set(
                            "skypanel_job_queue_jobs",
                            "Jobs of the apalis queues by queue and state (failed: waiting for a retry).",
                            &[("queue", &q.queue), ("state", job_state)],
                            n as f64,
                        );
                    }
                }
            }
            Err(err) => scrape_error(now, "redis", &err),
        },
        Err(_) => scrape_error(now, "redis", &"the job queues are not configured"),
    }
    if let Ok(orchestrator) = state.orchestrator() {
        #[derive(Default)]
        struct Kind {
            count: f64,
            restarts: f64,
            queued: f64,
            deepest: f64,
        }
        let mut by_kind: std::collections::BTreeMap<String, Kind> = Default::default();
        for actor in orchestrator.actors().await {
            let entry = by_kind.entry(actor.kind).or_default();
            entry.count += 1.0;
            entry.restarts += actor.restarts as f64;
            entry.queued += actor.queued as f64;
            entry.deepest = entry.deepest.max(actor.queued as f64);
        }
        for (kind, figures) in by_kind {
            let Kind {
                count,
                restarts,
                queued,
                deepest,
            } = figures;
            now.set(
                "skypanel_actors",
                "Live actors by kind.",
                &[("kind", &kind)],
                count,
            );
            now.set(
                "skypanel_actor_restarts",
                "Restarts of actors by kind within their supervisor's window.",
                &[("kind", &kind)],
                restarts,
            );
            now.set(
                "skypanel_actor_mailbox_messages",
                "Messages waiting in the mailboxes of the actors of a kind (counted for nodes, applications and wallets).",
                &[("kind", &kind)],
                queued,
            );
            now.set(
                "skypanel_actor_mailbox_deepest",
                "The most messages waiting in one actor's mailbox, by kind.",
                &[("kind", &kind)],
                deepest,
            );
        }
    }
}

fn scrape_error(now: &Metrics, part: &str, err: &dyn std::fmt::Display) {
    tracing::warn!(part, error = %err, "a part of /metrics could not be had");
    now.set(
        "skypanel_scrape_errors",
        "Parts of this scrape that could not be had (database, redis).",
        &[("part", part)],
        1.0,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_match_by_segment_and_prefix() {
        assert!(matches(
            "/api/paas/applications/{id}",
            "/api/paas/applications/7"
        ));
        assert!(!matches(
            "/api/paas/applications/{id}",
            "/api/paas/applications/7/deploy"
        ));
        assert!(!matches(
            "/api/paas/applications/{id}",
            "/api/paas/applications/"
        ));
        assert!(matches("/api/paas/applications", "/api/paas/applications"));
        assert!(matches("/console/*", "/console/abc/main.js"));
        assert!(matches("/git/*", "/git/shop.git/info/refs"));
        assert!(!matches("/git/*", "/gitx"));
        assert!(matches("/", "/"));
        assert!(!matches("/", "/wp-admin"));
    }
}
