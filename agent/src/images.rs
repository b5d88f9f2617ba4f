//! Release images on the node: finding (or pulling) the exact image a
//! release runs, and pushing a release's image to the platform's registry.
//! The node's images are a cache of the registry: a release runs by its
//! image id (a content digest), and an image pulled under that name must be
//! that image. The node keeps each application's images in use and a few
//! newer ones, and removes older ones it made (they carry its labels).

use std::collections::{HashMap, HashSet};

use bollard::auth::DockerCredentials;
use bollard::models::ImageSummary;
use bollard::query_parameters::{
    CreateImageOptions, ListImagesOptions, PushImageOptions, RemoveImageOptions, TagImageOptions,
};
use futures::StreamExt;
use skypanel_protocol::image::{PushSpec, Pushed, RegistryLogin, repository_of};
use skypanel_protocol::node::ImageUsage;
use skypanel_protocol::task::AppSpec;

use crate::docker::{Engine, short};
use crate::executor::{TaskFailure, TaskLog};

/// The image a release's containers run here, and (for a prebuilt image's
/// first rollout) the digest its reference resolved to.
pub struct Chosen {
    pub image_id: String,
    pub resolved: Option<String>,
}

fn credentials(login: Option<&RegistryLogin>) -> Option<DockerCredentials> {
    login.map(|l| DockerCredentials {
        username: Some(l.username.clone()),
        password: Some(l.password.clone()),
        serveraddress: Some(l.server.clone()),
        ..Default::default()
    })
}

/// The id of a local image, if the node has it.
async fn local_id(engine: &Engine, reference: &str) -> Option<String> {
    engine
        .raw()
        .inspect_image(reference)
        .await
        .ok()
        .and_then(|image| image.id)
}

/// Pulls `reference` (with the login, if any).
async fn pull(
    engine: &Engine,
    reference: &str,
    login: Option<&RegistryLogin>,
) -> Result<(), String> {
    let options = CreateImageOptions {
        from_image: Some(reference.to_string()),
        ..Default::default()
    };
    let mut stream = engine
        .raw()
        .create_image(Some(options), None, credentials(login));
    while let Some(step) = stream.next().await {
        if let Err(err) = step {
            return Err(short(&err));
        }
    }
    Ok(())
}

/// Makes sure an image is on the node, pulling it (without a login) when it
/// is not: a managed database's engine, a prebuilt image.
pub async fn ensure(engine: &Engine, reference: &str) -> Result<(), String> {
    if local_id(engine, reference).await.is_some() {
        return Ok(());
    }
    pull(engine, reference, None)
        .await
        .map_err(|e| format!("image {reference} is not on this node and cannot be pulled: {e}"))
}

/// Finds the release's image on the node, pulling it from the registry when
/// the node lacks it; a prebuilt reference seen for the first time is
/// resolved to its digest (pulled if the node does not have it).
pub async fn choose(engine: &Engine, spec: &AppSpec, log: &TaskLog) -> Result<Chosen, TaskFailure> {
    let Some(id) = spec.release_image.id.clone() else {
        ensure(engine, &spec.image)
            .await
            .map_err(TaskFailure::app)?;
        let id = local_id(engine, &spec.image).await.ok_or_else(|| {
            TaskFailure::node(format!("image {} vanished after its pull", spec.image))
        })?;
        return Ok(Chosen {
            image_id: id.clone(),
            resolved: Some(id),
        });
    };
    if local_id(engine, &id).await.is_some() {
        return Ok(Chosen {
            image_id: id,
            resolved: None,
        });
    }
    let Some(from) = &spec.release_image.pull else {
        return Err(TaskFailure::node(format!(
            "release {}'s image is not on this node and not in the platform's registry",
            spec.release
        )));
    };
    log.line(format!(
        "pulling release {}'s image from the registry",
        spec.release
    ));
    let began = std::time::Instant::now();
    pull(engine, from, spec.registry_login.as_ref())
        .await
        .map_err(|e| {
            TaskFailure::node(format!(
                "cannot pull release {}'s image from the registry: {e}",
                spec.release
            ))
        })?;
    match local_id(engine, from).await {
        Some(got) if got == id => {
            log.line(format!(
                "pulled release {}'s image in {} ms",
                spec.release,
                began.elapsed().as_millis()
            ));
            Ok(Chosen {
                image_id: id,
                resolved: None,
            })
        }
        got => Err(TaskFailure::node(format!(
            "the registry's image for release {} is {}, not the release's {id}",
            spec.release,
            got.as_deref().unwrap_or("missing")
        ))),
    }
}

/// Tags the release's image as the push target and pushes it; answers the
/// manifest's digest in the registry.
pub async fn push(engine: &Engine, spec: &PushSpec, log: &TaskLog) -> Result<Pushed, TaskFailure> {
    if local_id(engine, &spec.image_id).await.is_none() {
        return Err(TaskFailure::node(format!(
            "release {}'s image is no longer on this node",
            spec.release
        )));
    }
    let repository = repository_of(&spec.target).to_string();
    let tag = spec
        .target
        .strip_prefix(&repository)
        .and_then(|t| t.strip_prefix(':'))
        .unwrap_or("latest")
        .to_string();
    let options = TagImageOptions {
        repo: Some(repository.clone()),
        tag: Some(tag.clone()),
    };
    engine
        .raw()
        .tag_image(&spec.image_id, Some(options))
        .await
        .map_err(|e| TaskFailure::node(format!("cannot tag the image: {}", short(&e))))?;
    let began = std::time::Instant::now();
    let options = PushImageOptions {
        tag: Some(tag),
        ..Default::default()
    };
    let mut stream =
        engine
            .raw()
            .push_image(&repository, Some(options), credentials(spec.login.as_ref()));
    while let Some(step) = stream.next().await {
        match step {
            Ok(info) => {
                if let Some(error) = info.error_detail.and_then(|d| d.message) {
                    return Err(TaskFailure::node(format!(
                        "the registry refused the push: {error}"
                    )));
                }
            }
            Err(err) => {
                return Err(TaskFailure::node(format!(
                    "the push to the registry failed: {}",
                    short(&err)
                )));
            }
        }
    }
    let image = engine
        .raw()
        .inspect_image(&spec.target)
        .await
        .map_err(|e| {
            TaskFailure::node(format!("cannot inspect the pushed image: {}", short(&e)))
        })?;
    let prefix = format!("{repository}@");
    let digest = image
        .repo_digests
        .unwrap_or_default()
        .into_iter()
        .find_map(|d| d.strip_prefix(&prefix).map(str::to_string))
        .ok_or_else(|| TaskFailure::node("the registry answered no digest for the push"))?;
    log.line(format!(
        "pushed release {}'s image as {} ({digest}) in {} ms",
        spec.release,
        spec.target,
        began.elapsed().as_millis()
    ));
    Ok(Pushed {
        target: spec.target.clone(),
        digest,
        bytes: image.size.unwrap_or(0).max(0),
    })
}

/// The platform's images on this node (those carrying this agent's managed
/// label), of one application or all, newest first. Images without the
/// label (a customer's prebuilt image, anything else on the node) are never
/// listed, so never removed.
pub async fn managed(engine: &Engine, app_id: Option<i64>) -> Vec<ImageSummary> {
    let options = ListImagesOptions {
        filters: Some(HashMap::from([(
            "label".to_string(),
            vec![engine.managed_filter()],
        )])),
        ..Default::default()
    };
    let mut images: Vec<ImageSummary> = engine
        .raw()
        .list_images(Some(options))
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|i| app_id.is_none_or(|app| application_of(i) == Some(app)))
        .collect();
    images.sort_by_key(|i| std::cmp::Reverse(i.created));
    images
}

/// The application an image of the platform's is of, by its names: the
/// builder's tag (`[<namespace>]skypanel/app-<id>:<build>`) or the
/// registry's (`<registry>/[path/]app-<id>:v<release>` or `@sha256:…`).
fn application_of(image: &ImageSummary) -> Option<i64> {
    image
        .repo_tags
        .iter()
        .chain(&image.repo_digests)
        .find_map(|name| {
            let repository = repository_of(name);
            repository
                .rsplit('/')
                .next()?
                .strip_prefix("app-")?
                .parse()
                .ok()
        })
}

/// Keeps the application's images its containers use and the `keep` newest
/// others; removes older ones (the platform's own only). Answers how many
/// went.
pub async fn prune(engine: &Engine, app_id: i64, keep: usize) -> usize {
    let in_use: HashSet<String> = match engine.managed(Some(app_id)).await {
        Ok(containers) => containers.into_iter().filter_map(|c| c.image_id).collect(),
        Err(err) => {
            tracing::warn!(app_id, error = %short(&err), "cannot list containers; images kept");
            return 0;
        }
    };
    let mut removed = 0;
    let others = managed(engine, Some(app_id))
        .await
        .into_iter()
        .filter(|i| !in_use.contains(&i.id));
    for image in others.skip(keep) {
        let options = RemoveImageOptions {
            force: true,
            ..Default::default()
        };
        match engine
            .raw()
            .remove_image(&image.id, Some(options), None)
            .await
        {
            Ok(_) => removed += 1,
            Err(err) => {
                tracing::debug!(app_id, image = %image.id, error = %short(&err), "image kept")
            }
        }
    }
    if removed > 0 {
        tracing::info!(app_id, removed, keep, "older release images removed");
    }
    removed
}

/// Every platform image of the application goes (it was deleted).
pub async fn remove_all(engine: &Engine, app_id: i64) {
    for image in managed(engine, Some(app_id)).await {
        let options = RemoveImageOptions {
            force: true,
            ..Default::default()
        };
        let _ = engine
            .raw()
            .remove_image(&image.id, Some(options), None)
            .await;
    }
}

/// How many platform images the node holds, and their bytes.
pub async fn usage(engine: &Engine) -> ImageUsage {
    let images = managed(engine, None).await;
    ImageUsage {
        count: images.len() as i32,
        bytes: images.iter().map(|i| i.size.max(0)).sum(),
    }
}
