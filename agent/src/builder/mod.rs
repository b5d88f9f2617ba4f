//! The builder: clone the repository, choose how to build it (its Dockerfile
//! or a generated one), and build the image with the Docker Engine from a tar
//! context, streaming the build's output to the task log. Limits: the task's
//! time, the log's size (the rest is cut), the image's size. A cancelled
//! build stops at once; its working folder is always removed.

mod git;
mod recipe;
mod sandbox;

use std::path::{Path, PathBuf};
use std::time::Duration;

use bollard::query_parameters::RemoveImageOptions;
use skypanel_protocol::task::{BuildResult, BuildSpec};
use tokio::sync::watch;

use skypanel_protocol::names::LABEL_MANAGED;

use crate::docker::{Engine, short};
use crate::executor::{TaskFailure, TaskLog};

/// The folder of one build, removed when it goes out of scope.
struct WorkDir(PathBuf);

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[derive(Clone)]
pub struct Builder {
    engine: Engine,
    /// Where builds get their working folders.
    root: PathBuf,
}

/// Resolves when `cancel` turns true.
async fn cancelled(mut cancel: watch::Receiver<bool>) {
    while !*cancel.borrow() {
        if cancel.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

impl Builder {
    pub fn new(engine: Engine, root: PathBuf) -> Self {
        Self { engine, root }
    }

    /// The image tag of a build on this node.
    pub fn image_tag(&self, spec: &BuildSpec) -> String {
        format!("{}:{}", self.repository(spec.app_id), spec.build_number)
    }

    /// Builds the image; stops early when `cancel` turns true.
    pub async fn build(
        &self,
        spec: &BuildSpec,
        log: &TaskLog,
        cancel: watch::Receiver<bool>,
    ) -> Result<BuildResult, TaskFailure> {
        log.limit(spec.max_log_bytes);
        log.hide(spec.git_token.clone());
        let work = WorkDir(self.root.join(format!(
            "build-{}-{}",
            spec.build_id,
            uuid::Uuid::new_v4().simple()
        )));
        std::fs::create_dir_all(&work.0)
            .map_err(|e| TaskFailure::node(format!("cannot create the build folder: {e}")))?;
        let limit = Duration::from_secs(spec.timeout_secs.max(1));
        let cgroup_name = format!(
            "{}build-{}-{}",
            self.engine.namespace(),
            spec.build_id,
            uuid::Uuid::new_v4().simple()
        );
        let cgroup = sandbox::BuildCgroup::create(&cgroup_name, spec.limits.pids)
            .map_err(TaskFailure::node)?;
        let steps = self.steps(spec, &work.0, &cgroup, log);
        let outcome = tokio::select! {
            outcome = tokio::time::timeout(limit, steps) => match outcome {
                Ok(result) => result,
                Err(_) => Err(TaskFailure::app(format!(
                    "the build took longer than {} minutes and was stopped",
                    limit.as_secs().div_ceil(60)
                ))),
            },
            () = cancelled(cancel) => {
                log.line("build cancelled");
                Err(TaskFailure::app("the build was cancelled"))
            }
        };
        // A step's container outlives a build stopped under it (a limit, the
        // timeout, a cancel): nothing of the build may keep running.
        for container in cgroup.containers() {
            let _ = self.engine.remove(&container).await;
        }
        outcome
    }

    async fn steps(
        &self,
        spec: &BuildSpec,
        work: &Path,
        cgroup: &sandbox::BuildCgroup,
        log: &TaskLog,
    ) -> Result<BuildResult, TaskFailure> {
        if let Some(why) = &spec.git_token_refused {
            return Err(TaskFailure::app(why.clone()));
        }
        let clone = git::Clone {
            url: &spec.repo_url,
            branch: &spec.branch,
            commit: spec.commit.as_deref(),
            fetch_ref: spec.fetch_ref.as_deref(),
            token: spec.git_token.as_deref(),
            work,
        };
        let began = std::time::Instant::now();
        let (src, commit) = clone.run_clone(log).await?;
        let cloned = began.elapsed();
        let procfile = read_procfile(&src)?;
        if let Some(processes) = &procfile {
            let names: Vec<&str> = processes.keys().map(String::as_str).collect();
            log.line(format!("Procfile declares: {}", names.join(", ")));
        }
        let recipe = recipe::choose(
            |f| src.join(f).is_file(),
            spec.runtime.as_ref(),
            &spec.runtimes,
        )
        .map_err(TaskFailure::app)?;
        match &recipe {
            recipe::Recipe::Dockerfile => log.line("building with the repository's Dockerfile"),
            recipe::Recipe::Runtime(runtime) => {
                log.line(format!(
                    "no Dockerfile: building for {} on {}",
                    runtime.name, runtime.base_image
                ));
                std::fs::write(
                    src.join("Dockerfile"),
                    recipe::dockerfile(runtime, spec.port),
                )
                .map_err(|e| TaskFailure::node(format!("cannot write the Dockerfile: {e}")))?;
            }
        }
        self.label(&src.join("Dockerfile"))?;
        let context = work.join("context.tar");
        let (from, to) = (src.clone(), context.clone());
        tokio::task::spawn_blocking(move || write_context(&from, &to))
            .await
            .map_err(|e| TaskFailure::node(format!("cannot pack the source: {e}")))?
            .map_err(|e| TaskFailure::node(format!("cannot pack the source: {e}")))?;
        let packed = began.elapsed();
        let context_mb = std::fs::metadata(&context)
            .map(|m| m.len().div_ceil(1024 * 1024))
            .unwrap_or(0);
        if context_mb > spec.limits.context_mb {
            return Err(TaskFailure::app(format!(
                "the build's context (the repository) is {context_mb} MB, more than the limit \
                 of {} MB; leave out of it what the build does not need",
                spec.limits.context_mb
            )));
        }
        let tag = self.image_tag(spec);
        let network = self.engine.ensure_build_network().await.map_err(|e| {
            TaskFailure::node(format!("cannot make the builds' network: {}", short(&e)))
        })?;
        log.line(format!(
            "building with at most {} millicores, {} MB of memory and {} processes",
            spec.limits.cpu_millicores, spec.limits.memory_mb, spec.limits.pids
        ));
        sandbox::docker_build(&context, &tag, &network, cgroup, &spec.limits, log).await?;
        tracing::debug!(
            build_id = spec.build_id,
            ?cloned,
            ?packed,
            built = ?began.elapsed(),
            "build phases"
        );
        let image =
            self.engine.raw().inspect_image(&tag).await.map_err(|e| {
                TaskFailure::node(format!("cannot inspect the image: {}", short(&e)))
            })?;
        let size_mb = (image.size.unwrap_or(0).max(0) as u64).div_ceil(1024 * 1024) as i64;
        if size_mb > spec.max_image_mb as i64 {
            self.remove_image(&tag).await;
            return Err(TaskFailure::app(format!(
                "the image is {size_mb} MB, more than the limit of {} MB",
                spec.max_image_mb
            )));
        }
        log.line(format!("built {tag} ({size_mb} MB)"));
        Ok(BuildResult {
            image_tag: tag,
            image_id: image.id.unwrap_or_default(),
            image_size_mb: size_mb,
            commit_sha: commit.sha,
            commit_message: commit.message,
            builder: recipe.builder(),
            procfile,
        })
    }

    /// Sets the platform's label in the Dockerfile's final stage: the node's
    /// image retention removes only images that carry it (never a
    /// customer's own). A Dockerfile that is not a regular file (a symbolic
    /// link) is left as it is, and its image is never removed by retention.
    fn label(&self, dockerfile: &Path) -> Result<(), TaskFailure> {
        let regular = std::fs::symlink_metadata(dockerfile).is_ok_and(|m| m.is_file());
        if !regular {
            return Ok(());
        }
        let text = std::fs::read_to_string(dockerfile)
            .map_err(|e| TaskFailure::app(format!("cannot read the Dockerfile: {e}")))?;
        let label = format!("{LABEL_MANAGED}=\"{}\"", self.engine.managed_value());
        if let Some(labelled) = recipe::labelled(&text, &label) {
            std::fs::write(dockerfile, labelled)
                .map_err(|e| TaskFailure::node(format!("cannot write the Dockerfile: {e}")))?;
        }
        Ok(())
    }

    /// The repository part of an application's image tags on this node.
    fn repository(&self, app_id: i64) -> String {
        format!("{}skypanel/app-{app_id}", self.engine.namespace())
    }

    /// Removes every image built for the application (it was deleted).
    pub async fn remove_images(&self, app_id: i64) {
        let filters = std::collections::HashMap::from([(
            "reference".to_string(),
            vec![self.repository(app_id)],
        )]);
        let options = bollard::query_parameters::ListImagesOptions {
            filters: Some(filters),
            ..Default::default()
        };
        let Ok(images) = self.engine.raw().list_images(Some(options)).await else {
            return;
        };
        for image in images {
            self.remove_image(&image.id).await;
        }
    }

    async fn remove_image(&self, tag: &str) {
        let options = RemoveImageOptions {
            force: true,
            ..Default::default()
        };
        let _ = self
            .engine
            .raw()
            .remove_image(tag, Some(options), None)
            .await;
    }
}

/// Packs `src` (the checkout) into a tar file for the Docker Engine.
fn write_context(src: &Path, to: &Path) -> std::io::Result<()> {
    let file = std::fs::File::create(to)?;
    let mut tar = tar::Builder::new(std::io::BufWriter::new(file));
    tar.follow_symlinks(false);
    tar.append_dir_all(".", src)?;
    tar.into_inner()?.into_inner().map_err(|e| e.into_error())?;
    Ok(())
}

/// The repository's `Procfile`, parsed; `None` without one. A Procfile
/// that is not a regular file (a link could point anywhere on the node),
/// is too large or does not parse fails the build with the reason.
fn read_procfile(
    src: &Path,
) -> Result<Option<std::collections::BTreeMap<String, String>>, TaskFailure> {
    let path = src.join("Procfile");
    let meta = match std::fs::symlink_metadata(&path) {
        Ok(meta) => meta,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => {
            return Err(TaskFailure::node(format!(
                "cannot read the Procfile: {err}"
            )));
        }
    };
    if !meta.file_type().is_file() {
        return Err(TaskFailure::app(
            "the Procfile must be a regular file (not a link or a folder)",
        ));
    }
    if meta.len() > skypanel_protocol::procfile::MAX_BYTES as u64 {
        return Err(TaskFailure::app(format!(
            "the Procfile is larger than {} KiB",
            skypanel_protocol::procfile::MAX_BYTES / 1024
        )));
    }
    let text = std::fs::read(&path)
        .map_err(|e| TaskFailure::node(format!("cannot read the Procfile: {e}")))?;
    let text =
        String::from_utf8(text).map_err(|_| TaskFailure::app("the Procfile is not UTF-8 text"))?;
    skypanel_protocol::procfile::parse(&text)
        .map(Some)
        .map_err(|e| TaskFailure::app(e.0))
}
