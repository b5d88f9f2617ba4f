//! Several control-plane replicas on one PostgreSQL and one Redis, end to
//! end on real processes: the replica owning an application is SIGKILLed in
//! the middle of its build and another takes its shards over (the time is
//! printed), the deploy finishes, scale and rollback follow, and the
//! platform settles exactly; a replica partitioned from PostgreSQL past its
//! lease loses its shards and rejoins with new epochs; three replicas billing
//! the same hour charge it once. Tests that run agents are named `docker_…`.

#![allow(clippy::unwrap_used)] // test code: a panic with the value is the clearest failure report

mod stack;

use std::time::{Duration, Instant};

use diesel::sql_types::{BigInt, Integer, Nullable, Text};
use diesel::{QueryableByName, sql_query};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde_json::{Value, json};
use stack::proxy::CutProxy;
use stack::settle::{files, settled_exactly, slow_app, slow_step_runs};
use stack::{PLATFORM_DOMAIN, Repo, Stack, Timing, WEB_IMAGE, agent_dir};

#[derive(QueryableByName, Debug, Clone, PartialEq, Eq)]
struct Held {
    #[diesel(sql_type = Nullable<Text>)]
    address: Option<String>,
    #[diesel(sql_type = BigInt)]
    shards: i64,
}

/// Unexpired shards per replica address.
async fn held(conn: &mut AsyncPgConnection) -> Vec<Held> {
    sql_query(
        "SELECT r.address, count(l.shard) AS shards FROM paas_shard_leases l \
         JOIN paas_replicas r ON r.id = l.owner WHERE l.expires_at > now() \
         GROUP BY r.address ORDER BY r.address",
    )
    .load(conn)
    .await
    .unwrap()
}

#[derive(QueryableByName)]
struct Owner {
    #[diesel(sql_type = Nullable<Text>)]
    address: Option<String>,
}

/// The address of the replica holding entity `id`'s shard now, if any.
async fn owner_of(conn: &mut AsyncPgConnection, id: i64) -> Option<String> {
    let found: Vec<Owner> = sql_query(
        "SELECT r.address FROM paas_shard_leases l JOIN paas_replicas r ON r.id = l.owner \
         WHERE l.shard = $1 AND l.expires_at > now()",
    )
    .bind::<Integer, _>((id % 64) as i32)
    .load(conn)
    .await
    .unwrap();
    found.into_iter().next().and_then(|o| o.address)
}

/// Waits until every one of `bases` holds at least `least` shards.
async fn spread(stack: &Stack, bases: &[String], least: i64) -> Vec<Held> {
    let mut conn = AsyncPgConnection::establish(&stack.db.url).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = held(&mut conn).await;
        let each = |base: &String| {
            now.iter()
                .find(|h| h.address.as_ref() == Some(base))
                .map_or(0, |h| h.shards)
        };
        if bases.iter().all(|b| each(b) >= least) {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "the shards never spread over {bases:?}: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn docker_the_replica_owning_an_app_killed_mid_build_hands_it_over_and_the_deploy_finishes() {
    let mut stack = Stack::start(Timing {
        env: vec![("SKYPANEL_SWEEP_INTERVAL", "2".into())],
        ..Timing::default()
    })
    .await;
    stack.start_replica().await;
    stack.start_replica().await;
    let bases: Vec<String> = (0..3).map(|i| stack.replica_base(i)).collect();
    spread(&stack, &bases, 20).await;

    // The agent knows every replica; it moves on when one stops answering.
    let namespace = stack.namespace.clone();
    let (_node, agent) = stack
        .node_at("worker-1", agent_dir(), &bases.join(","), &namespace)
        .await;
    let plan = stack.plan().await;

    // An application owned by a replica other than the one the test talks to.
    let mut conn = AsyncPgConnection::establish(&stack.db.url).await.unwrap();
    let alice = stack.customer("alice@example.com").await;
    let mut chosen = None;
    for n in 0..64 {
        let name = format!("ha{n}");
        let repo = Repo::new(&files(&slow_app("kept alive")));
        let app = stack.git_app(&alice, &name, plan, &repo.url()).await;
        // (A shard given back in a rebalance has no owner for a beat.)
        let mut owner = owner_of(&mut conn, app).await;
        while owner.is_none() {
            tokio::time::sleep(Duration::from_millis(200)).await;
            owner = owner_of(&mut conn, app).await;
        }
        let owner = owner.unwrap();
        if owner != bases[0] {
            let index = bases.iter().position(|b| *b == owner).unwrap();
            chosen = Some((name, app, repo, index));
            break;
        }
    }
    let (name, app, repo, owner) = chosen.expect("an application owned by replica 1 or 2");

    let build = stack.start_deploy(&alice, app).await;
    slow_step_runs(&stack, &alice, app, build).await;
    // The inspector, asked at any replica, shows every replica's actors
    // (the application's, started by the deploy, on its owner).
    let actors = stack.get("/api/admin/inspector/actors", &stack.admin).await;
    let mut roots: Vec<&str> = actors
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == "root")
        .map(|a| a["replica"].as_str().unwrap())
        .collect();
    roots.sort();
    let mut all: Vec<&str> = bases.iter().map(String::as_str).collect();
    all.sort();
    assert_eq!(roots, all, "{actors:#}");
    let of_app = |actors: &serde_json::Value| {
        actors
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["kind"] == "app" && a["entity_id"] == app)
            .map(|a| a["replica"].as_str().unwrap().to_string())
    };
    assert_eq!(
        of_app(&actors).as_deref(),
        Some(bases[owner].as_str()),
        "{actors:#}"
    );

    stack.kill_replica(owner);
    let killed_at = Instant::now();
    let takeover = loop {
        if let Some(now) = owner_of(&mut conn, app).await
            && now != bases[owner]
        {
            break killed_at.elapsed();
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(30),
            "nobody took the application's shard over"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    println!(
        "replica {owner} SIGKILLed mid-build: application {app}'s shard taken over in {:.2} s",
        takeover.as_secs_f64()
    );
    assert!(
        takeover < Duration::from_secs(10),
        "the takeover took {takeover:?} (lease 7 s, beat 1 s)"
    );

    // The inspector lists the application's actor on its new owner (and
    // the dead replica, while it is still counted live, as unreachable).
    stack
        .until(
            20,
            "the inspector shows the application's new owner",
            || async {
                let actors = stack.get("/api/admin/inspector/actors", &stack.admin).await;
                of_app(&actors).is_some_and(|r| r != bases[owner])
            },
        )
        .await;

    // The deploy finishes on the new owner and the platform settles exactly.
    let done = stack.build_ends(&alice, app, build).await;
    assert_eq!(done["status"], "success", "{done:#}");
    stack.app_in(&alice, app, "running").await;
    let host = format!("{name}.{PLATFORM_DOMAIN}");
    stack::serves(agent.ingress_port, &host, "/", "kept alive").await;
    settled_exactly(&stack, app, 1).await;

    // Scale, a second deploy, and a rollback, with one replica gone.
    let (status, scaled) = stack
        .post(
            &format!("/api/paas/applications/{app}/scale"),
            &alice,
            json!({"instance_count": 2}),
        )
        .await;
    assert_eq!(status, 202, "{scaled:#}");
    stack.app_in(&alice, app, "running").await;
    settled_exactly(&stack, app, 2).await;
    let second = [
        (
            "Dockerfile",
            format!("FROM {WEB_IMAGE}\nCOPY index.html /www/index.html\n"),
        ),
        ("index.html", "version two".to_string()),
    ];
    repo.commit(&files(&second), "version two");
    let build = stack.start_deploy(&alice, app).await;
    let done = stack.build_ends(&alice, app, build).await;
    assert_eq!(done["status"], "success", "{done:#}");
    stack::serves(agent.ingress_port, &host, "/", "version two").await;
    settled_exactly(&stack, app, 2).await;
    let (status, rolled) = stack
        .post(
            &format!("/api/paas/applications/{app}/rollback"),
            &alice,
            json!({"release": 1}),
        )
        .await;
    assert_eq!(status, 202, "{rolled:#}");
    assert_eq!(rolled["release"], 3);
    stack.app_in(&alice, app, "running").await;
    stack::serves(agent.ingress_port, &host, "/", "kept alive").await;
    stack
        .until(60, "exactly release 3's two containers run", || async {
            let containers = stack.containers(app);
            containers.len() == 2
                && containers
                    .iter()
                    .all(|c| c.ends_with(" running") && c.contains("-r3-"))
        })
        .await;

    // The two left own every shard between them.
    let left = [bases[0].clone(), bases[3 - owner].clone()];
    let now = spread(&stack, &left, 30).await;
    assert_eq!(now.iter().map(|h| h.shards).sum::<i64>(), 64, "{now:?}");
}

#[derive(QueryableByName, Debug)]
struct Lease {
    #[diesel(sql_type = Integer)]
    shard: i32,
    #[diesel(sql_type = BigInt)]
    epoch: i64,
}

/// The unexpired leases of the replica at `address`.
async fn leases_of(stack: &Stack, address: &str) -> Vec<Lease> {
    let mut conn = AsyncPgConnection::establish(&stack.db.url).await.unwrap();
    sql_query(
        "SELECT l.shard, l.epoch FROM paas_shard_leases l JOIN paas_replicas r \
         ON r.id = l.owner WHERE r.address = $1 AND l.expires_at > now() ORDER BY l.shard",
    )
    .bind::<Text, _>(address)
    .load(&mut conn)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_replica_partitioned_from_postgresql_past_its_lease_loses_its_shards_and_rejoins() {
    let mut stack = Stack::start(Timing::default()).await;
    let postgres = CutProxy::start("127.0.0.1:5432".into()).await;
    let through_proxy = stack.db.url.replacen(
        "127.0.0.1:5432",
        postgres.url.trim_start_matches("http://"),
        1,
    );
    let cut_off = stack
        .start_replica_with(&[("SKYPANEL_DATABASE_URL", through_proxy)])
        .await;
    let (first, second) = (stack.replica_base(0), stack.replica_base(cut_off));
    spread(&stack, &[first.clone(), second.clone()], 32).await;

    let before = leases_of(&stack, &second).await;
    assert_eq!(before.len(), 32);

    // Cut off longer than a lease: the other replica takes every shard.
    postgres.cut();
    let cut_at = Instant::now();
    spread(&stack, std::slice::from_ref(&first), 64).await;
    println!(
        "a replica cut off from PostgreSQL: its shards taken over in {:.2} s",
        cut_at.elapsed().as_secs_f64()
    );
    let customer = stack.customer("alice@example.com").await;
    let (status, _) = stack
        .call(
            reqwest::Method::GET,
            "/api/paas/applications",
            &customer,
            None,
        )
        .await;
    assert_eq!(
        status, 200,
        "the replica with the database serves meanwhile"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Back: it takes up a share again, each shard at a new epoch, and a
    // request it receives for an entity the other owns is carried there.
    postgres.restore();
    spread(&stack, &[first.clone(), second.clone()], 30).await;
    let after = leases_of(&stack, &second).await;
    for lease in &after {
        if let Some(old) = before.iter().find(|l| l.shard == lease.shard) {
            assert!(
                lease.epoch > old.epoch,
                "shard {} came back at epoch {} (was {})",
                lease.shard,
                lease.epoch,
                old.epoch
            );
        }
    }
    let (status, wallet) = stack
        .call(reqwest::Method::GET, "/api/wallet", &customer, None)
        .await;
    assert_eq!(status, 200, "{wallet:#}");
    for base in [&first, &second] {
        let answer = stack
            .http
            .get(format!("{base}/api/paas/applications"))
            .bearer_auth(&customer)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200, "{base} serves after the partition");
    }
}

#[tokio::test]
async fn three_replicas_billing_the_same_hour_charge_it_once() {
    let mut stack = Stack::start(Timing::default()).await;
    stack.start_replica().await;
    stack.start_replica().await;
    let bases: Vec<String> = (0..3).map(|i| stack.replica_base(i)).collect();
    spread(&stack, &bases, 20).await;
    stack.pending_node("worker-1").await;
    let plan = stack.plan().await;

    // Two customers' applications ran through the whole of the last hour.
    let hour = {
        let now = chrono::Utc::now().timestamp();
        chrono::DateTime::from_timestamp(now - now.rem_euclid(3600) - 3600, 0).unwrap()
    };
    let mut customers = Vec::new();
    for name in ["alice", "bob"] {
        let token = stack.customer(&format!("{name}@example.com")).await;
        let (status, app) = stack
            .post(
                "/api/paas/applications",
                &token,
                json!({"name": name, "plan_id": plan, "region": "local", "image": WEB_IMAGE}),
            )
            .await;
        assert_eq!(status, 201, "{app:#}");
        stack
            .sql(&format!(
                "INSERT INTO paas_usage (user_id, resource_type, resource_id, plan_id, instances, started_at, ended_at) \
                 SELECT user_id, 'application', id, {plan}, 1, '{}', '{}' FROM paas_applications WHERE id = {}",
                hour.to_rfc3339(),
                (hour + chrono::Duration::hours(1)).to_rfc3339(),
                app["id"],
            ))
            .await;
        customers.push(token);
    }

    // Each replica is asked to bill that hour, all at once.
    let period = json!({"period_start": hour.to_rfc3339()});
    let runs = futures::future::join_all(bases.iter().map(|base| {
        stack
            .http
            .post(format!("{base}/api/admin/paas/billing/run"))
            .bearer_auth(&stack.admin)
            .json(&period)
            .send()
    }))
    .await;
    let mut records = 0;
    for run in runs {
        let run = run.unwrap();
        assert_eq!(run.status(), 200);
        records += run.json::<Value>().await.unwrap()["records"]
            .as_i64()
            .unwrap();
    }
    assert_eq!(records, 2, "one record per application, whoever billed it");
    let mut conn = AsyncPgConnection::establish(&stack.db.url).await.unwrap();
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let debits: Count =
        sql_query("SELECT count(*) AS n FROM wallet_transactions WHERE kind = 'debit'")
            .get_result(&mut conn)
            .await
            .unwrap();
    assert_eq!(debits.n, 2, "one debit per wallet and hour");
    for token in &customers {
        let wallet = stack.get("/api/wallet", token).await;
        assert_eq!(wallet["balance"], "-0.0070", "{wallet:#}");
    }
}

/// What replica `base` answers to a request carrying `bearer` or a node's
/// `credential`.
async fn status_at(
    stack: &Stack,
    method: reqwest::Method,
    base: &str,
    path: &str,
    bearer: Option<&str>,
    credential: Option<&str>,
    body: Option<Value>,
) -> u16 {
    let mut request = stack.http.request(method, format!("{base}{path}"));
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    if let Some(credential) = credential {
        request = request.header(skypanel_protocol::CREDENTIAL_HEADER, credential);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap().status().as_u16()
}

/// Asks `status()` until it answers 401, for up to 5 s (a replica that
/// only forgot by itself would take a minute); answers how long it took.
async fn refused_soon<F, Fut>(what: &str, mut status: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = u16>,
{
    let started = Instant::now();
    loop {
        let now = status().await;
        if now == 401 {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{what}: still answered {now} after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_credential_revoked_at_one_replica_is_refused_by_another_at_once() {
    let mut stack = Stack::start(Timing::default()).await;
    stack.start_replica().await;
    let (first, second) = (stack.replica_base(0), stack.replica_base(1));
    let (get, post, delete) = (
        reqwest::Method::GET,
        reqwest::Method::POST,
        reqwest::Method::DELETE,
    );

    // An API token used (and so remembered) at the second replica, deleted
    // at the first.
    let alice = stack.customer("alice@example.com").await;
    let (status, created) = stack
        .post("/api/auth/tokens", &alice, json!({"name": "ci"}))
        .await;
    assert_eq!(status, 201, "{created:#}");
    let token = created["token"].as_str().unwrap().to_string();
    let id = created["id"].as_i64().unwrap();
    let listed_at_second = || {
        status_at(
            &stack,
            get.clone(),
            &second,
            "/api/paas/applications",
            Some(&token),
            None,
            None,
        )
    };
    assert_eq!(listed_at_second().await, 200);
    let path = format!("/api/auth/tokens/{id}");
    let deleted = status_at(
        &stack,
        delete.clone(),
        &first,
        &path,
        Some(&alice),
        None,
        None,
    )
    .await;
    assert_eq!(deleted, 204);
    let took = refused_soon(
        "the deleted API token at the other replica",
        listed_at_second,
    )
    .await;
    println!("a deleted API token was refused by the other replica after {took:?}");

    // A node whose agent heartbeats at the second replica, removed at the
    // first: its credential is refused (401), not merely its node unknown.
    let (status, node) = stack
        .post(
            "/api/admin/paas/nodes/register",
            &stack.admin,
            json!({"name": "worker-9", "region": "local", "host_address": "127.0.0.1"}),
        )
        .await;
    assert_eq!(status, 201, "{node:#}");
    let node_id = node["node_id"].as_i64().unwrap();
    let registered = stack
        .http
        .post(format!("{first}/api/internal/paas/nodes/register"))
        .json(&json!({
            "registration_token": node["registration_token"], "agent_version": "test",
            "hostname": "test-host", "cpu_total": 4000, "memory_total_mb": 8192,
            "disk_total_mb": 100000
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), 201);
    let credential = registered.json::<Value>().await.unwrap()["credential"]
        .as_str()
        .unwrap()
        .to_string();
    let beat = json!({
        "node_id": node_id, "timestamp": chrono::Utc::now(), "agent_version": "test",
        "cpu_usage_percent": 10.0, "cpu_total": 4000, "memory_used_mb": 1024,
        "memory_total_mb": 8192, "disk_used_mb": 1000, "disk_total_mb": 100000,
        "container_count": 0, "containers": []
    });
    let heartbeat = format!("/api/internal/paas/nodes/{node_id}/heartbeat");
    let beat_at_second = || {
        status_at(
            &stack,
            post.clone(),
            &second,
            &heartbeat,
            None,
            Some(&credential),
            Some(beat.clone()),
        )
    };
    assert_eq!(beat_at_second().await, 200);
    let path = format!("/api/admin/paas/nodes/{node_id}");
    let removed = status_at(
        &stack,
        delete,
        &first,
        &path,
        Some(&stack.admin),
        None,
        None,
    )
    .await;
    assert!(removed == 204 || removed == 200, "{removed}");
    let took = refused_soon(
        "a removed node's credential at the other replica",
        beat_at_second,
    )
    .await;
    println!("a removed node's credential was refused by the other replica after {took:?}");
}
