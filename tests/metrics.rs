//! `GET /metrics` on the real HTTP application, PostgreSQL and actors: only
//! an admin reads it; every line parses as Prometheus' text format; a
//! deploy moves the counters it should, and the counts of the platform's
//! state follow it.

#![allow(clippy::unwrap_used)] // test code: a panic with the value is the clearest failure report

mod common;

use std::collections::BTreeMap;

use common::TestApp;
use poem::http::Method;
use serde_json::json;

/// The samples of a scrape by series (`name{a="1",b="2"}`, labels sorted),
/// checking every line against Prometheus' text format: `# HELP`/`# TYPE`
/// lines name their family once, each sample belongs to a declared family
/// (a histogram's `_bucket`, `_sum` and `_count` to theirs), names and
/// label names are well formed, label values are quoted with escapes, and
/// values are numbers.
fn parse(text: &str) -> BTreeMap<String, f64> {
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut samples = BTreeMap::new();
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    };
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(name_ok(name), "{line}");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line}"
            );
            assert!(
                types.insert(name.into(), kind.into()).is_none(),
                "twice: {line}"
            );
            continue;
        }
        if line.starts_with("# HELP ") || line.starts_with('#') {
            continue;
        }
        let end = line.find(['{', ' ']).unwrap();
        let name = &line[..end];
        assert!(name_ok(name), "{line}");
        let family = types.get(name).map(|_| name).or_else(|| {
            ["_bucket", "_sum", "_count"].iter().find_map(|suffix| {
                let base = name.strip_suffix(suffix)?;
                (types.get(base).map(String::as_str) == Some("histogram")).then_some(base)
            })
        });
        assert!(family.is_some(), "a sample of no declared family: {line}");
        let mut rest = &line[end..];
        let mut labels = Vec::new();
        if let Some(inner) = rest.strip_prefix('{') {
            let mut chars = inner.char_indices().peekable();
            let consumed = loop {
                let start = chars.peek().unwrap().0;
                let mut key_end = start;
                for (i, c) in chars.by_ref() {
                    if c == '=' {
                        key_end = i;
                        break;
                    }
                }
                let key = &inner[start..key_end];
                assert!(name_ok(key), "{line}");
                assert_eq!(chars.next().map(|(_, c)| c), Some('"'), "{line}");
                let mut value = String::new();
                loop {
                    match chars.next().unwrap() {
                        (_, '\\') => match chars.next().unwrap().1 {
                            'n' => value.push('\n'),
                            c @ ('\\' | '"') => value.push(c),
                            other => panic!("a bad escape \\{other}: {line}"),
                        },
                        (_, '"') => break,
                        (_, c) => value.push(c),
                    }
                }
                labels.push(format!("{key}={value:?}"));
                match chars.next().unwrap() {
                    (_, ',') => {}
                    (i, '}') => break i + 1,
                    other => panic!("{other:?} in {line}"),
                }
            };
            rest = &inner[consumed..];
        }
        let value = rest.strip_prefix(' ').unwrap();
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("not a number: {line}")),
        };
        labels.sort();
        let key = if labels.is_empty() {
            name.to_string()
        } else {
            format!("{name}{{{}}}", labels.join(","))
        };
        assert!(samples.insert(key, value).is_none(), "twice: {line}");
    }
    samples
}

async fn scrape(app: &TestApp, admin: &str) -> BTreeMap<String, f64> {
    let answer = app.call(Method::GET, "/metrics", Some(admin), None).await;
    assert_eq!(answer.status, 200, "{:#}", answer.body);
    assert!(
        answer
            .content_type
            .as_deref()
            .is_some_and(|t| t.starts_with("text/plain; version=0.0.4")),
        "{:?}",
        answer.content_type
    );
    parse(answer.body.as_str().unwrap())
}

fn at(samples: &BTreeMap<String, f64>, key: &str) -> f64 {
    samples.get(key).copied().unwrap_or(0.0)
}

#[tokio::test]
async fn only_an_admin_reads_the_metrics_and_a_deploy_moves_them() {
    let app = TestApp::new().await;
    let admin = app.admin().await;
    let plan = app.plan(&admin, "basic").await;
    let agent = app.agent(&admin, "worker-1", "local").await;
    app.beat(&agent, json!([])).await.expect(200);
    let (_, customer) = app.customer("alice@example.com").await;
    let application = app.app(&customer, "shop", plan).await;

    let anonymous = app.call(Method::GET, "/metrics", None, None).await;
    assert_eq!(anonymous.status, 401, "{:#}", anonymous.body);
    assert_eq!(anonymous.body["code"], "unauthorized");
    let customer_scrape = app
        .call(Method::GET, "/metrics", Some(&customer), None)
        .await;
    assert_eq!(customer_scrape.status, 403, "{:#}", customer_scrape.body);

    let before = scrape(&app, &admin).await;
    assert_eq!(at(&before, "skypanel_nodes{status=\"online\"}"), 1.0);
    assert!(before.keys().any(|k| k.starts_with("skypanel_build_info{")));
    assert!(
        at(&before, "skypanel_actors{kind=\"node\"}") >= 1.0,
        "{before:#?}"
    );
    assert!(at(&before, "skypanel_agent_heartbeats_total") >= 1.0);
    // The only replica holds every shard lease (within its first beat).
    let shards_of = app.orchestrator.context().shards();
    // (The test's parser keys samples by their labels in name order.)
    let owned = format!(
        "skypanel_shards_owned{{hostname=\"{}\",replica=\"{}\",this=\"true\"}}",
        shards_of.hostname(),
        shards_of.replica()
    );
    let mut shards = 0.0;
    for _ in 0..50 {
        shards = at(&scrape(&app, &admin).await, &owned);
        if shards == 64.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(shards, 64.0, "{owned} in {:#?}", scrape(&app, &admin).await);

    app.post(
        &format!("/api/paas/applications/{application}/deploy"),
        &customer,
        json!({}),
    )
    .await
    .expect(202);
    let queued = scrape(&app, &admin).await;
    assert_eq!(
        at(
            &queued,
            "skypanel_tasks{kind=\"app.apply\",status=\"queued\"}"
        ),
        1.0,
        "{queued:#?}"
    );
    let leased = app.lease(&agent, 1).await.expect(200)["tasks"][0].clone();
    let task_id = leased["task_id"].as_i64().unwrap();
    let lease = leased["lease_id"].as_str().unwrap();
    app.report(&agent, task_id, lease, "running", None, json!([]))
        .await
        .expect(200);
    app.report(&agent, task_id, lease, "succeeded", None, json!([]))
        .await
        .expect(200);

    let after = scrape(&app, &admin).await;
    let finished = "skypanel_tasks_finished_total{kind=\"app.apply\",status=\"succeeded\"}";
    assert_eq!(at(&after, finished) - at(&before, finished), 1.0);
    let took = "skypanel_task_duration_seconds_count{kind=\"app.apply\"}";
    assert_eq!(at(&after, took) - at(&before, took), 1.0);
    let waited = "skypanel_task_lease_wait_seconds_count{kind=\"app.apply\"}";
    assert_eq!(at(&after, waited) - at(&before, waited), 1.0);
    assert_eq!(
        at(
            &after,
            "skypanel_task_lease_wait_seconds_bucket{kind=\"app.apply\",le=\"+Inf\"}"
        ),
        at(&after, waited)
    );
    let deploys = "skypanel_http_requests_total{method=\"POST\",route=\"/api/paas/applications/{id}/deploy\",status=\"202\"}";
    assert_eq!(
        at(&after, deploys) - at(&before, deploys),
        1.0,
        "{after:#?}"
    );
    assert_eq!(
        at(
            &after,
            "skypanel_tasks{kind=\"app.apply\",status=\"queued\"}"
        ),
        0.0
    );
    // Ids never make series: every route label is a template.
    assert!(
        after
            .keys()
            .filter(|k| k.starts_with("skypanel_http_requests_total{"))
            .all(|k| !k.contains(&format!("/{application}"))),
        "{after:#?}"
    );
    // Unknown paths share one label.
    app.call(Method::GET, "/wp-admin/setup.php", None, None)
        .await;
    let last = scrape(&app, &admin).await;
    assert!(
        at(
            &last,
            "skypanel_http_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"}"
        ) >= 1.0,
        "{last:#?}"
    );
}

#[tokio::test]
async fn a_busy_actors_waiting_messages_show_as_its_mailbox_depth_and_drain() {
    use diesel_async::{AsyncConnection, RunQueryDsl};
    let app = TestApp::new().await;
    let admin = app.admin().await;
    let plan = app.plan(&admin, "basic").await;
    let agent = app.agent(&admin, "worker-1", "local").await;
    app.beat(&agent, json!([])).await.expect(200);
    let (_, customer) = app.customer("alice@example.com").await;
    let application = app.app(&customer, "shop", plan).await;
    let deploy = format!("/api/paas/applications/{application}/deploy");
    let messages = "skypanel_actor_mailbox_messages{kind=\"app\"}";
    let deepest = "skypanel_actor_mailbox_deepest{kind=\"app\"}";
    let idle = scrape(&app, &admin).await;
    assert_eq!(
        idle.get("skypanel_actor_mailbox_messages{kind=\"node\"}"),
        Some(&0.0),
        "{idle:#?}"
    );

    // Another transaction holds the application's row: the actor's first
    // deploy waits on it inside its handler, and the next two wait in its
    // mailbox.
    let mut holder = app.sql().await;
    holder
        .begin_test_transaction()
        .await
        .expect("a transaction");
    diesel::sql_query(format!(
        "SELECT id FROM paas_applications WHERE id = {application} FOR UPDATE"
    ))
    .execute(&mut holder)
    .await
    .expect("the row locked");
    let requests = async {
        tokio::join!(
            app.post(&deploy, &customer, json!({})),
            app.post(&deploy, &customer, json!({})),
            app.post(&deploy, &customer, json!({})),
        )
    };
    let watch = async {
        let mut seen = BTreeMap::new();
        for _ in 0..100 {
            seen = scrape(&app, &admin).await;
            if at(&seen, deepest) >= 2.0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        // The holder lets go: the actor takes the rest.
        drop(holder);
        seen
    };
    let ((first, second, third), busy) = tokio::join!(requests, watch);
    // Two deploys (and maybe the actor's own catch-up tick) wait.
    assert!(at(&busy, deepest) >= 2.0, "{busy:#?}");
    assert!(at(&busy, messages) >= at(&busy, deepest), "{busy:#?}");
    for answer in [first, second, third] {
        answer.expect(202);
    }
    app.eventually(10, "the mailbox drained", || async {
        let now = scrape(&app, &admin).await;
        at(&now, messages) == 0.0 && at(&now, deepest) == 0.0
    })
    .await;
}
