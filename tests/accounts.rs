//! Accounts as an admin finds them (`/api/admin/users`: search by e-mail,
//! one user with their applications and wallet) and the data export a
//! customer downloads (`/api/account/export`) without a secret in it.

#![allow(clippy::unwrap_used)] // test code: a panic with the value is the clearest failure report

mod common;

use common::TestApp;
use serde_json::json;

#[tokio::test]
async fn an_admin_finds_users_by_email_and_sees_one_with_apps_and_wallet() {
    let app = TestApp::new().await;
    let w = app.world().await;
    let (bob_id, _bob) = app.customer("Bob.Builder@example.com").await;
    app.customer("carol@example.org").await;
    let credited = app
        .post(
            &format!("/api/admin/wallets/{bob_id}/credit"),
            &w.admin,
            json!({"amount": "12.50", "description": "welcome credit"}),
        )
        .await;
    credited.expect(200);

    // Everyone, oldest first; with counts and balances.
    let all = app
        .get("/api/admin/users", &w.admin)
        .await
        .expect(200)
        .clone();
    let emails: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["user"]["email"].as_str().unwrap())
        .collect();
    assert!(emails.len() >= 3, "{emails:?}");
    let alice = all
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["user"]["id"] == w.customer_id)
        .unwrap();
    assert_eq!(alice["applications"], 1);
    assert_eq!(alice["databases"], 0);

    // A search is a substring of the e-mail, in any case; LIKE's wildcards
    // are taken literally.
    let found = app
        .get("/api/admin/users?q=BUILDER", &w.admin)
        .await
        .expect(200)
        .clone();
    assert_eq!(found.as_array().unwrap().len(), 1, "{found}");
    assert_eq!(found[0]["user"]["email"], "bob.builder@example.com");
    assert_eq!(found[0]["balance"], "12.5000");
    for wildcard in ["%25", "_"] {
        let none = app
            .get(&format!("/api/admin/users?q={wildcard}"), &w.admin)
            .await
            .expect(200)
            .clone();
        assert_eq!(none.as_array().unwrap().len(), 0, "{wildcard}: {none}");
    }
    let paged = app
        .get("/api/admin/users?limit=1&offset=1", &w.admin)
        .await
        .expect(200)
        .clone();
    assert_eq!(paged.as_array().unwrap().len(), 1);

    // One user: their applications and wallet.
    let one = app
        .get(&format!("/api/admin/users/{}", w.customer_id), &w.admin)
        .await
        .expect(200)
        .clone();
    assert_eq!(one["applications"][0]["id"], w.app);
    assert!(one["wallet"]["balance"].is_string());
    let bob = app
        .get(&format!("/api/admin/users/{bob_id}"), &w.admin)
        .await
        .expect(200)
        .clone();
    assert_eq!(
        bob["wallet"]["transactions"][0]["description"],
        "welcome credit"
    );
    app.get("/api/admin/users/999999", &w.admin)
        .await
        .expect(404);

    // Customers see none of it.
    for path in [
        "/api/admin/users".to_string(),
        format!("/api/admin/users/{bob_id}"),
        format!("/api/admin/users/{bob_id}/export"),
    ] {
        app.get(&path, &w.customer).await.expect(403);
    }
}

#[tokio::test]
async fn a_customer_downloads_everything_held_about_them_without_a_secret() {
    let app = TestApp::new().await;
    let w = app.world().await;
    let env = format!("/api/paas/applications/{}/env", w.app);
    app.post(
        &env,
        &w.customer,
        json!({"key": "API_KEY", "value": "canary-value-0451"}),
    )
    .await
    .expect(201);
    app.post(
        &format!("/api/paas/applications/{}/domains", w.app),
        &w.customer,
        json!({"hostname": "shop.example.com"}),
    )
    .await
    .expect(201);
    let token = app
        .post("/api/auth/tokens", &w.customer, json!({"name": "ci"}))
        .await
        .expect(201)
        .clone();
    let secret = token["token"].as_str().unwrap().to_string();
    let hook = app
        .post(
            "/api/paas/webhooks",
            &w.customer,
            json!({"url": "https://hooks.example.com/skypanel", "events": ["build.failed"]}),
        )
        .await;
    let hook = hook.expect(201).clone();
    let hook_secret = hook["secret"].as_str().unwrap_or_default().to_string();
    app.post(
        &format!("/api/admin/wallets/{}/credit", w.customer_id),
        &w.admin,
        json!({"amount": "5.00", "description": "export test"}),
    )
    .await
    .expect(200);

    let export = app
        .get("/api/account/export", &w.customer)
        .await
        .expect(200)
        .clone();
    assert_eq!(export["account"]["id"], w.customer_id);
    let application = &export["applications"][0];
    assert_eq!(application["application"]["id"], w.app);
    assert_eq!(application["variable_names"], json!(["API_KEY"]));
    assert!(
        application["domains"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["hostname"] == "shop.example.com"),
        "{application}"
    );
    assert!(application["releases"].is_array(), "{application}");
    assert_eq!(export["api_tokens"][0]["name"], "ci");
    assert_eq!(
        export["webhooks"][0]["url"],
        "https://hooks.example.com/skypanel"
    );
    assert_eq!(
        export["wallet"]["transactions"][0]["description"],
        "export test"
    );
    let actions: Vec<&str> = export["audit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for action in ["user.register", "user.login", "env.add"] {
        assert!(
            actions.iter().any(|a| a.starts_with(action)),
            "{action} in {actions:?}"
        );
    }
    let text = export.to_string();
    for canary in ["canary-value-0451", secret.as_str()] {
        assert!(!text.contains(canary), "{canary} in the export");
    }
    if !hook_secret.is_empty() {
        assert!(
            !text.contains(&hook_secret),
            "the webhook's secret in the export"
        );
    }

    // The admin downloads the same document; another customer's is not theirs.
    let by_admin = app
        .get(
            &format!("/api/admin/users/{}/export", w.customer_id),
            &w.admin,
        )
        .await
        .expect(200)
        .clone();
    assert_eq!(by_admin["applications"], export["applications"]);
    let (_, mallory) = app.customer("mallory@example.com").await;
    let theirs = app
        .get("/api/account/export", &mallory)
        .await
        .expect(200)
        .clone();
    assert_eq!(theirs["applications"], json!([]));
    assert!(!theirs.to_string().contains("canary"));
}
