//! The registry's retention: each application keeps the images of its
//! newest `keep_releases` releases, of every release younger than
//! `keep_days` and of the release it serves; other images' manifests are
//! deleted (blobs go at the registry's next garbage collection, see
//! `ops/registry`). A deleted application's images all go. Runs daily and
//! when an admin asks; deleting twice is harmless, so replicas may overlap.

use std::collections::HashSet;

use apalis::prelude::{BoxDynError, Data};
use apalis_cron::Tick;
use skypanel_store::releases::{self, Release};
use skypanel_store::{Store, apps};

use crate::registry::RegistryClient;

/// The registry and how much of it each application keeps.
#[derive(Clone, Debug)]
pub struct RegistryRetention {
    pub client: RegistryClient,
    pub keep_releases: usize,
    pub keep_days: i64,
}

/// What a round did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pruned {
    /// Manifests deleted from the registry.
    pub manifests: usize,
    /// Applications whose releases were looked at.
    pub applications: usize,
    /// What could not be deleted (the round goes on past them).
    pub errors: Vec<String>,
}

/// The digests of an application's releases that no kept release uses.
pub fn unkept_digests(
    releases: &[Release],
    serving: Option<i64>,
    keep_releases: usize,
    keep_after: chrono::DateTime<chrono::Utc>,
) -> Vec<String> {
    let mut by_version: Vec<&Release> = releases.iter().collect();
    by_version.sort_by_key(|r| std::cmp::Reverse(r.version));
    let kept: HashSet<&str> = by_version
        .iter()
        .enumerate()
        .filter(|(rank, r)| {
            *rank < keep_releases || r.created_at >= keep_after || Some(r.id) == serving
        })
        .filter_map(|(_, r)| r.image_digest.as_deref())
        .collect();
    let mut gone: Vec<String> = by_version
        .iter()
        .filter_map(|r| r.image_digest.as_deref())
        .filter(|d| !kept.contains(d))
        .map(str::to_string)
        .collect();
    gone.sort();
    gone.dedup();
    gone
}

/// One round over every application, and the repositories of deleted ones.
pub async fn prune_registry(
    store: &Store,
    retention: &RegistryRetention,
) -> Result<Pruned, String> {
    let mut pruned = Pruned::default();
    let mut conn = store.conn().await.map_err(|e| e.to_string())?;
    let ids = apps::all_ids(&mut conn).await.map_err(|e| e.to_string())?;
    let keep_after = chrono::Utc::now() - chrono::Duration::days(retention.keep_days);
    for app_id in &ids {
        let app = match apps::load(&mut conn, *app_id).await {
            Ok(app) => app,
            Err(skypanel_store::Error::NotFound) => continue,
            Err(err) => return Err(err.to_string()),
        };
        let list = releases::all_of(&mut conn, app.id)
            .await
            .map_err(|e| e.to_string())?;
        pruned.applications += 1;
        for digest in unkept_digests(
            &list,
            app.current_release_id,
            retention.keep_releases,
            keep_after,
        ) {
            match retention.client.delete(app.id, &digest).await {
                Ok(()) => {
                    releases::forget_push(&mut conn, app.id, &digest)
                        .await
                        .map_err(|e| e.to_string())?;
                    pruned.manifests += 1;
                }
                Err(err) => pruned.errors.push(err),
            }
        }
    }
    let known: HashSet<i64> = ids.into_iter().collect();
    match retention.client.applications().await {
        Ok(in_registry) => {
            for app_id in in_registry.into_iter().filter(|a| !known.contains(a)) {
                match remove_repository(&retention.client, app_id).await {
                    Ok(count) => pruned.manifests += count,
                    Err(err) => pruned.errors.push(err),
                }
            }
        }
        Err(err) => pruned.errors.push(err),
    }
    tracing::info!(
        manifests = pruned.manifests,
        applications = pruned.applications,
        errors = pruned.errors.len(),
        "registry retention round"
    );
    Ok(pruned)
}

/// Deletes every manifest of a deleted application's repository.
async fn remove_repository(client: &RegistryClient, app_id: i64) -> Result<usize, String> {
    let mut digests = HashSet::new();
    for tag in client.tags(app_id).await? {
        if let Some(digest) = client.digest(app_id, &tag).await? {
            digests.insert(digest);
        }
    }
    for digest in &digests {
        client.delete(app_id, digest).await?;
    }
    Ok(digests.len())
}

/// What the daily cron's handler needs.
#[derive(Clone)]
pub(crate) struct RetentionContext {
    pub store: Store,
    pub retention: RegistryRetention,
}

/// The daily cron's handler.
pub(crate) async fn tick(_tick: Tick, ctx: Data<RetentionContext>) -> Result<(), BoxDynError> {
    prune_registry(&ctx.store, &ctx.retention).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release(id: i64, version: i32, days_old: i64, digest: Option<&str>) -> Release {
        Release {
            id,
            application_id: 1,
            version,
            build_id: None,
            image_tag: "t".into(),
            config: serde_json::json!({}),
            env_snapshot: None,
            description: String::new(),
            created_by: None,
            created_at: chrono::Utc::now() - chrono::Duration::days(days_old),
            node_id: None,
            kind: "build".into(),
            image_id: None,
            registry_ref: None,
            image_digest: digest.map(str::to_string),
            pushed_at: None,
            push_error: None,
            image_bytes: None,
            status: "succeeded".into(),
            failure: None,
        }
    }

    #[test]
    fn the_newest_releases_the_young_ones_and_the_serving_one_keep_their_images() {
        let now = chrono::Utc::now();
        let list = vec![
            release(1, 1, 90, Some("sha256:a")),
            release(2, 2, 80, Some("sha256:b")),
            release(3, 3, 70, Some("sha256:c")),
            // A configuration release shares its image with release 3.
            release(4, 4, 60, Some("sha256:c")),
            release(5, 5, 50, Some("sha256:d")),
            release(6, 6, 1, Some("sha256:e")),
        ];
        let cutoff = now - chrono::Duration::days(30);
        // Keep 2: releases 6 and 5; release 1 serves (a rollback).
        assert_eq!(
            unkept_digests(&list, Some(1), 2, cutoff),
            vec!["sha256:b".to_string(), "sha256:c".to_string()]
        );
        // Keep 3: release 4 keeps c, which release 3 shares.
        assert_eq!(
            unkept_digests(&list, Some(6), 3, cutoff),
            vec!["sha256:a".to_string(), "sha256:b".to_string()]
        );
        // Everything is young: nothing goes.
        assert!(unkept_digests(&list, None, 1, now - chrono::Duration::days(365)).is_empty());
    }
}
