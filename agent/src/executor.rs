//! Carries out a task on Docker. Every task brings the node to a described
//! state and can be run again safely: deterministic names, inspect before
//! create, and "already done" counts as done.
//!
//! An apply starts the release's missing instances, waits until each accepts
//! TCP connections on its port, and only then removes other releases' and
//! surplus containers; if the new ones do not come up, they are removed and
//! the previous release keeps serving.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use skypanel_protocol::node::{ContainerReport, ContainerState};
use skypanel_protocol::procfile::{self, WEB};
use skypanel_protocol::task::{AppSpec, AppTarget, BuildResult, ReleasePhase, TaskSpec};

use crate::builder::Builder;
use crate::crash::CrashPolicy;
use crate::docker::{Engine, Inspected, Managed, Role, short};
use crate::ingress::{Ingress, Mode, Names};

/// How often a starting instance is checked: every wasted wait is deploy time.
const HEALTH_POLL: Duration = Duration::from_millis(20);

/// Seconds a container gets to stop before it is killed.
const STOP_GRACE_SECS: i32 = 10;

pub use crate::tasklog::TaskLog;

/// Why a task failed, in words a customer can act on (never a secret).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct TaskFailure {
    pub message: String,
    /// The node or its Docker failed, not the application: worth another try elsewhere.
    pub infrastructure: bool,
}

impl TaskFailure {
    /// A failure of the application itself (its code, image or configuration).
    pub fn app(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            infrastructure: false,
        }
    }

    /// A failure of the node, not of the application.
    pub fn node(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            infrastructure: true,
        }
    }
}

/// What a task produced.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The application's containers afterwards, and when they were listed.
    pub instances: Vec<ContainerReport>,
    pub observed_at: Option<chrono::DateTime<chrono::Utc>>,
    pub build: Option<BuildResult>,
    pub backup: Option<skypanel_protocol::database::BackupResult>,
    /// The digest a prebuilt image's reference resolved to.
    pub resolved: Option<String>,
    /// What a push left in the registry.
    pub pushed: Option<skypanel_protocol::image::Pushed>,
    /// How a one-off run ended.
    pub run: Option<skypanel_protocol::task::RunResult>,
}

fn docker(what: &str, err: &bollard::errors::Error) -> TaskFailure {
    TaskFailure::node(format!("{what}: {}", short(err)))
}

/// Whether an apply makes every instance anew (a restart) or keeps the
/// release's instances that exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fresh {
    Yes,
    No,
}

/// What is done to containers that must go or stop.
#[derive(Debug, Clone, Copy)]
enum Action {
    /// Stop gracefully, then remove (a release or instance no longer wanted).
    Retire,
    Stop,
    Remove,
}

impl Action {
    fn verb(self) -> &'static str {
        match self {
            Action::Retire => "retiring",
            Action::Stop => "stopping",
            Action::Remove => "removing",
        }
    }
}

/// How a new container shows it is ready: its port, and the HTTP path to ask.
struct Probe<'a> {
    port: i32,
    path: Option<&'a str>,
}

impl Probe<'_> {
    fn of(spec: &AppSpec) -> Probe<'_> {
        Probe {
            port: spec.port,
            path: spec.health_check_path.as_deref(),
        }
    }

    /// Ok when ready; else the HTTP status it answered, if it answered.
    async fn check(&self, http: &reqwest::Client, ip: std::net::IpAddr) -> Result<(), Option<u16>> {
        let address = std::net::SocketAddr::new(ip, self.port as u16);
        let Some(path) = self.path else {
            let connect = tokio::time::timeout(
                Duration::from_secs(1),
                tokio::net::TcpStream::connect(address),
            );
            return match connect.await {
                Ok(Ok(_)) => Ok(()),
                _ => Err(None),
            };
        };
        match http.get(format!("http://{address}{path}")).send().await {
            Ok(answer) if answer.status().is_success() || answer.status().is_redirection() => {
                Ok(())
            }
            Ok(answer) => Err(Some(answer.status().as_u16())),
            Err(_) => Err(None),
        }
    }
}

/// A container a release should have.
struct Want {
    process: String,
    command: Option<String>,
    instance: i32,
    name: String,
}

impl Want {
    /// How the deploy log names it (`instance 1`, `worker 0`).
    fn label(&self) -> String {
        if self.process == WEB {
            format!("instance {}", self.instance)
        } else {
            format!("{} {}", self.process, self.instance)
        }
    }
}

/// A duration in words for a failure (`60 minutes`, `90 s`).
fn minutes(limit: Duration) -> String {
    let secs = limit.as_secs();
    if secs >= 60 && secs.is_multiple_of(60) {
        format!("{} minutes", secs / 60)
    } else {
        format!("{secs} s")
    }
}

/// `; its last lines: a | b` (at most 1,000 characters), or nothing.
fn last_lines(lines: &[String]) -> String {
    let text: Vec<&str> = lines
        .iter()
        .map(|l| l.trim())
        .filter(|l| !l.is_empty())
        .collect();
    if text.is_empty() {
        return String::new();
    }
    let joined = text.join(" | ");
    let kept: String = if joined.len() > 1000 {
        let start = joined.len() - 1000;
        let start = (start..joined.len())
            .find(|i| joined.is_char_boundary(*i))
            .unwrap_or(joined.len());
        format!("…{}", &joined[start..])
    } else {
        joined
    };
    format!("; its last lines: {kept}")
}

/// What the executor works with.
#[derive(Clone)]
pub struct Executor {
    engine: Engine,
    crash: CrashPolicy,
    builder: Builder,
    ingress: Ingress,
    health_timeout: Duration,
    /// How long retired instances keep serving the requests they hold after
    /// the ingress moved to the new release.
    drain: Duration,
    /// Asks health-check paths: no redirects followed, a short timeout.
    http: reqwest::Client,
    /// The databases' dumps.
    dumps: crate::backups::Dumps,
    /// Release images kept per application besides those in use.
    keep_images: usize,
    /// The control plane (a moving database's dump travels through it).
    client: crate::client::ControlPlane,
    /// Applications a task works on now: the ingress sync leaves them alone.
    busy: Arc<Mutex<std::collections::HashMap<i64, usize>>>,
}

/// Marks an application busy while it lives.
struct Busy<'a> {
    busy: &'a Mutex<std::collections::HashMap<i64, usize>>,
    app_id: i64,
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        if let Ok(mut busy) = self.busy.lock()
            && let Some(count) = busy.get_mut(&self.app_id)
        {
            *count -= 1;
            if *count == 0 {
                busy.remove(&self.app_id);
            }
        }
    }
}

/// The executor's parts and limits.
pub struct ExecutorOptions {
    pub engine: Engine,
    pub crash: CrashPolicy,
    pub builder: Builder,
    pub ingress: Ingress,
    pub health_timeout: Duration,
    pub drain: Duration,
    pub dumps: crate::backups::Dumps,
    pub keep_images: usize,
    pub client: crate::client::ControlPlane,
}

impl Executor {
    /// What a moving database's tasks work with.
    fn mover(&self) -> crate::moves::Mover<'_> {
        crate::moves::Mover {
            engine: &self.engine,
            crash: &self.crash,
            dumps: &self.dumps,
            client: &self.client,
        }
    }

    pub fn new(options: ExecutorOptions) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap_or_default();
        Self {
            engine: options.engine,
            crash: options.crash,
            builder: options.builder,
            ingress: options.ingress,
            health_timeout: options.health_timeout,
            drain: options.drain,
            dumps: options.dumps,
            keep_images: options.keep_images,
            client: options.client,
            http,
            busy: Arc::default(),
        }
    }

    fn mark_busy(&self, app_id: i64) -> Busy<'_> {
        if let Ok(mut busy) = self.busy.lock() {
            *busy.entry(app_id).or_default() += 1;
        }
        Busy {
            busy: &self.busy,
            app_id,
        }
    }

    /// Runs a task. `cancel` turns true when the control plane cancels it.
    pub async fn run(
        &self,
        spec: &TaskSpec,
        log: &TaskLog,
        cancel: tokio::sync::watch::Receiver<bool>,
    ) -> Result<Outcome, TaskFailure> {
        match spec {
            TaskSpec::DbProvision(db) => {
                let ready = self.health_timeout.max(Duration::from_secs(120));
                crate::dbs::provision(&self.engine, &self.crash, db, log, ready).await?;
                if let Some(import) = &db.import {
                    self.mover().import(db, import, log, ready).await?;
                }
                return Ok(Outcome::default());
            }
            TaskSpec::DbExport(export) => {
                let result = self.mover().export(export, log).await?;
                return Ok(Outcome {
                    backup: Some(result),
                    ..Outcome::default()
                });
            }
            TaskSpec::DbStop(target) => {
                // A stop the agent makes is not a crash to restart.
                self.crash
                    .expect_stop(&self.engine.database_container_name(target.database_id));
                crate::dbs::stop(&self.engine, target).await?;
                return Ok(Outcome::default());
            }
            TaskSpec::DbDelete(target) => {
                crate::dbs::remove(&self.engine, &self.dumps, target).await?;
                return Ok(Outcome::default());
            }
            TaskSpec::DbBackup(backup) => {
                let result = crate::backups::backup(&self.engine, &self.dumps, backup, log).await?;
                return Ok(Outcome {
                    backup: Some(result),
                    ..Outcome::default()
                });
            }
            TaskSpec::ImagePush(push) => {
                let pushed = crate::images::push(&self.engine, push, log).await?;
                return Ok(Outcome {
                    pushed: Some(pushed),
                    ..Outcome::default()
                });
            }
            TaskSpec::DbRestore(restore) => {
                crate::backups::restore(
                    &self.engine,
                    &self.crash,
                    &self.dumps,
                    restore,
                    log,
                    self.health_timeout.max(Duration::from_secs(120)),
                )
                .await?;
                return Ok(Outcome::default());
            }
            _ => {}
        }
        let _busy = self.mark_busy(spec.app_id());
        let mut resolved = None;
        match spec {
            TaskSpec::DbProvision(_)
            | TaskSpec::DbStop(_)
            | TaskSpec::DbDelete(_)
            | TaskSpec::DbBackup(_)
            | TaskSpec::DbExport(_)
            | TaskSpec::DbRestore(_)
            | TaskSpec::ImagePush(_) => {
                unreachable!("answered above")
            }
            TaskSpec::AppApply(spec) => resolved = self.apply(spec, log, Fresh::No).await?,
            // A restart makes every instance anew from the release (its
            // environment as the release froze it), then retires the old ones.
            TaskSpec::AppRestart(spec) => resolved = self.apply(spec, log, Fresh::Yes).await?,
            TaskSpec::AppStop(target) => self.stop(target, log).await?,
            TaskSpec::AppDelete(target) => self.delete(target, log).await?,
            TaskSpec::IngressChallenge(challenge) => {
                self.ingress
                    .answer_challenge(&challenge.token, &challenge.key_authorization)
                    .await
                    .map_err(TaskFailure::node)?;
                log.line(format!(
                    "the ingress answers the ACME challenge for {}",
                    challenge.hostname
                ));
                return Ok(Outcome::default());
            }
            TaskSpec::AppRun(_) => {
                return Err(TaskFailure::node("a run is carried out by the runs module"));
            }
            TaskSpec::AppBuild(spec) => {
                let build = self.builder.build(spec, log, cancel).await?;
                return Ok(Outcome {
                    build: Some(build),
                    ..Outcome::default()
                });
            }
        }
        let (instances, observed_at) = self.report(spec.app_id()).await?;
        Ok(Outcome {
            instances,
            observed_at: Some(observed_at),
            resolved,
            ..Outcome::default()
        })
    }

    /// Points the ingress at the running instances of the release it serves,
    /// where they moved (a crashed instance restarted on a new port). Runs
    /// every few seconds.
    pub async fn sync_ingress(&self) {
        for (app_id, route) in self.ingress.routes().await {
            let Mode::Serving { release, ports } = &route.mode else {
                continue;
            };
            if self.busy.lock().is_ok_and(|b| b.contains_key(&app_id)) {
                continue;
            }
            let Ok(containers) = self.engine.managed(Some(app_id)).await else {
                continue;
            };
            let mut now: Vec<u16> = containers
                .iter()
                .filter(|c| {
                    c.release == *release
                        && c.process == WEB
                        && c.one_off.is_none()
                        && c.state == ContainerState::Running
                })
                .filter_map(|c| c.host_port.and_then(|p| u16::try_from(p).ok()))
                .collect();
            now.sort_unstable();
            if &now != ports {
                tracing::info!(app_id, ?now, "instances moved; updating the ingress");
                if let Err(err) = self.ingress.reroute(app_id, *release, now).await {
                    tracing::warn!(app_id, error = %err, "cannot update the ingress");
                }
            }
        }
    }

    /// The application's containers as they are now, and when they were listed.
    pub async fn report(
        &self,
        app_id: i64,
    ) -> Result<(Vec<ContainerReport>, chrono::DateTime<chrono::Utc>), TaskFailure> {
        let listed_at = chrono::Utc::now();
        let managed = self
            .engine
            .managed(Some(app_id))
            .await
            .map_err(|e| docker("cannot list containers", &e))?;
        let reports = managed
            .into_iter()
            .filter(|m| m.one_off.is_none())
            .map(|m| ContainerReport {
                restart_count: self.crash.restarts(&m.name),
                crash_looping: self.crash.looping(&m.name),
                container_id: m.id,
                name: m.name,
                application_id: m.app_id,
                user_id: m.user_id,
                release: m.release,
                process: m.process,
                instance: m.instance,
                generation: m.generation,
                state: m.state,
                host_port: m.host_port,
                cpu_usage_percent: 0.0,
                memory_used_mb: 0,
            })
            .collect();
        Ok((reports, listed_at))
    }

    /// Makes exactly the release's instances run (`Fresh::Yes`: every one
    /// made anew), switches the ingress to them once all are healthy, and
    /// retires everything else of the application after the drain. Answers
    /// the digest a prebuilt image's reference resolved to, if it did.
    async fn apply(
        &self,
        spec: &AppSpec,
        log: &TaskLog,
        fresh: Fresh,
    ) -> Result<Option<String>, TaskFailure> {
        log.line(format!(
            "applying release {} with {} instance(s)",
            spec.release, spec.instances
        ));
        let began = Instant::now();
        let mut phases: Vec<(&str, Duration)> = Vec::new();
        let chosen = crate::images::choose(&self.engine, spec, log).await?;
        let network = self
            .engine
            .ensure_network(spec.user_id)
            .await
            .map_err(|e| docker("cannot create the application network", &e))?;
        if let Some(phase) = &spec.release_phase {
            self.release_phase(spec, phase, &chosen.image_id, &network, log)
                .await?;
            phases.push(("release phase", began.elapsed()));
        }
        let existing = self
            .engine
            .managed(Some(spec.app_id))
            .await
            .map_err(|e| docker("cannot list containers", &e))?;
        let wanted = self.wanted(spec, &existing, fresh);
        let names: Vec<String> = wanted.iter().map(|w| w.name.clone()).collect();
        let mut started = Vec::new();
        let outcome = async {
            for want in &wanted {
                let role = Role {
                    process: &want.process,
                    command: want.command.as_deref(),
                    one_off: None,
                    session: None,
                };
                let what = want.label();
                self.engine
                    .ensure_container(
                        spec,
                        &chosen.image_id,
                        &want.name,
                        want.instance,
                        role,
                        &network,
                    )
                    .await
                    .map_err(|e| docker(&format!("cannot create {what}"), &e))?;
                let running = matches!(
                    self.engine.inspect(&want.name).await,
                    Ok(Some(Inspected {
                        state: ContainerState::Running,
                        ..
                    }))
                );
                if !running {
                    self.crash.started(&want.name);
                    self.engine
                        .start(&want.name)
                        .await
                        .map_err(|e| docker(&format!("cannot start {what}"), &e))?;
                    started.push(want.name.clone());
                }
            }
            phases.push(("started", began.elapsed()));
            // Only web instances are checked and routed to; the other
            // processes run under the crash policy.
            let web: Vec<&Want> = wanted.iter().filter(|w| w.process == WEB).collect();
            let probe = Probe::of(spec);
            let checks = web
                .iter()
                .map(|w| self.wait_healthy(&w.name, w.instance, &probe, log));
            for (checked, w) in futures::future::join_all(checks)
                .await
                .into_iter()
                .zip(&web)
            {
                checked?;
                log.line(format!("instance {} is up", w.instance));
            }
            phases.push(("healthy", began.elapsed()));
            let web_names: Vec<String> = web.iter().map(|w| w.name.clone()).collect();
            let ports = self.host_ports(&web_names).await?;
            self.ingress
                .serve(spec.app_id, Names::of(spec), spec.release, ports)
                .await
                .map_err(TaskFailure::node)?;
            phases.push(("routed", began.elapsed()));
            tracing::debug!(
                app_id = spec.app_id,
                release = spec.release,
                ?phases,
                "release serves"
            );
            Ok::<_, TaskFailure>(())
        }
        .await;
        if let Err(failure) = outcome {
            // Leave things as they were: remove what this attempt started.
            for name in &started {
                self.crash.expect_stop(name);
                let _ = self.engine.remove(name).await;
            }
            return Err(failure);
        }
        for p in &spec.processes {
            log.line(format!("{} {} process(es) run", p.instances, p.process));
        }
        let resolved = chosen.resolved;
        // The new release serves: retire everything else of the application,
        // once the requests it holds had time to finish.
        let current = self
            .engine
            .managed(Some(spec.app_id))
            .await
            .map_err(|e| docker("cannot list containers", &e))?;
        // One-off containers (runs) are not the release's to retire.
        let retiring: Vec<&Managed> = current
            .iter()
            .filter(|c| !names.contains(&c.name) && c.one_off.is_none())
            .collect();
        if !retiring.is_empty() && !self.drain.is_zero() {
            log.line(format!(
                "the ingress serves release {}; draining the old instances for {} s",
                spec.release,
                self.drain.as_secs_f32()
            ));
            tokio::time::sleep(self.drain).await;
        }
        self.each(&retiring, log, Action::Retire).await?;
        crate::images::prune(&self.engine, spec.app_id, self.keep_images).await;
        Ok(resolved)
    }

    /// The containers the release should have: `spec.instances` web
    /// instances and each process type's count, under their existing names
    /// (`Fresh::No`) or names of this generation (`Fresh::Yes`).
    fn wanted(&self, spec: &AppSpec, existing: &[Managed], fresh: Fresh) -> Vec<Want> {
        let types = std::iter::once((WEB, spec.web_command.as_deref(), spec.instances)).chain(
            spec.processes
                .iter()
                .map(|p| (p.process.as_str(), Some(p.command.as_str()), p.instances)),
        );
        let mut wanted = Vec::new();
        for (process, command, count) in types {
            for instance in 0..count {
                let name = match fresh {
                    Fresh::Yes => self.engine.container_name_of(
                        spec.app_id,
                        spec.release,
                        process,
                        instance,
                        spec.generation,
                    ),
                    Fresh::No => existing
                        .iter()
                        .filter(|c| {
                            c.release == spec.release
                                && c.process == process
                                && c.instance == instance
                                && c.one_off.is_none()
                        })
                        .max_by_key(|c| (c.state == ContainerState::Running, c.generation))
                        .map(|c| c.name.clone())
                        .unwrap_or_else(|| {
                            self.engine
                                .container_name(spec.app_id, spec.release, process, instance)
                        }),
                };
                wanted.push(Want {
                    process: process.to_string(),
                    command: command.map(str::to_string),
                    instance,
                    name,
                });
            }
        }
        wanted
    }

    /// Runs the release phase: the release's command in a one-off container
    /// of the release, before any of its processes starts. Its output goes
    /// to the deploy's log; a non-zero exit, a kill or the timeout fails the
    /// rollout with the exit and the last lines. One that succeeded already
    /// (a task run again) is not run twice.
    async fn release_phase(
        &self,
        spec: &AppSpec,
        phase: &ReleasePhase,
        image: &str,
        network: &str,
        log: &TaskLog,
    ) -> Result<(), TaskFailure> {
        let name = self.engine.release_phase_name(spec.app_id, spec.release);
        match self.engine.inspect(&name).await {
            Ok(Some(Inspected {
                state: ContainerState::Exited,
                exit_code: 0,
                ..
            })) => {
                log.line("the release phase ran already");
                return Ok(());
            }
            Ok(Some(_)) => {
                self.crash.expect_stop(&name);
                self.engine
                    .remove(&name)
                    .await
                    .map_err(|e| docker("cannot remove an earlier release phase", &e))?;
            }
            Ok(None) => {}
            Err(e) => return Err(docker("cannot inspect the release phase", &e)),
        }
        log.line(format!("running the release phase: {}", phase.command));
        let role = Role {
            process: procfile::RELEASE,
            command: Some(&phase.command),
            one_off: Some(procfile::RELEASE),
            session: None,
        };
        self.engine
            .ensure_container(spec, image, &name, 0, role, network)
            .await
            .map_err(|e| docker("cannot create the release phase's container", &e))?;
        self.crash.expect_stop(&name);
        self.engine
            .start(&name)
            .await
            .map_err(|e| docker("cannot start the release phase", &e))?;
        let limit = Duration::from_secs(phase.timeout_secs.max(1));
        let output = self.engine.follow_output(&name, log, "release");
        let waited = tokio::time::timeout(limit, self.engine.wait_exit(&name));
        tokio::pin!(output, waited);
        let ended = tokio::select! {
            ended = &mut waited => {
                // The last lines it wrote, if they are still on their way.
                let _ = tokio::time::timeout(Duration::from_secs(2), &mut output).await;
                ended
            }
            () = &mut output => waited.await,
        };
        let code = match ended {
            Ok(Ok(code)) => code,
            Ok(Err(e)) => {
                let _ = self.engine.remove(&name).await;
                return Err(docker("the release phase's container went away", &e));
            }
            Err(_) => {
                let _ = self.engine.stop(&name, 0).await;
                let last = self.engine.tail(&name, 10).await;
                let _ = self.engine.remove(&name).await;
                return Err(TaskFailure::app(format!(
                    "the release command ran longer than {} and was stopped; the current release \
                     keeps serving{}",
                    minutes(limit),
                    last_lines(&last)
                )));
            }
        };
        if code == 0 {
            log.line("the release phase succeeded");
            let _ = self.engine.remove(&name).await;
            return Ok(());
        }
        let last = self.engine.tail(&name, 10).await;
        let _ = self.engine.remove(&name).await;
        let how = if code == 137 {
            "was killed (exit 137: out of memory, or a signal)".to_string()
        } else {
            format!("exited with code {code}")
        };
        Err(TaskFailure::app(format!(
            "the release command {how}; the current release keeps serving{}",
            last_lines(&last)
        )))
    }

    /// The published ports of running containers, by name.
    async fn host_ports(&self, names: &[String]) -> Result<Vec<u16>, TaskFailure> {
        let mut ports = Vec::with_capacity(names.len());
        for name in names {
            match self.engine.inspect(name).await {
                Ok(Some(Inspected {
                    host_port: Some(port),
                    ..
                })) => ports.push(u16::try_from(port).map_err(|_| {
                    TaskFailure::node(format!("{name} has an impossible port {port}"))
                })?),
                Ok(_) => {
                    return Err(TaskFailure::node(format!("{name} has no published port")));
                }
                Err(e) => return Err(docker("cannot inspect an instance", &e)),
            }
        }
        Ok(ports)
    }

    /// Does `action` to every container at once (after telling the crash
    /// policy their exits are intended); the first failure is the task's.
    async fn each(
        &self,
        containers: &[&Managed],
        log: &TaskLog,
        action: Action,
    ) -> Result<(), TaskFailure> {
        for c in containers {
            log.line(format!("{} {}", action.verb(), c.name));
            self.crash.expect_stop(&c.name);
        }
        let results =
            futures::future::join_all(containers.iter().map(|c| self.act(&c.name, action))).await;
        for (c, result) in containers.iter().zip(results) {
            result.map_err(|e| {
                docker(
                    &format!("{} instance {} failed", action.verb(), c.instance),
                    &e,
                )
            })?;
        }
        Ok(())
    }

    async fn act(&self, name: &str, action: Action) -> Result<(), bollard::errors::Error> {
        match action {
            Action::Retire => {
                self.engine.stop(name, STOP_GRACE_SECS).await?;
                self.engine.remove(name).await
            }
            Action::Stop => self.engine.stop(name, STOP_GRACE_SECS).await,
            Action::Remove => self.engine.remove(name).await,
        }
    }

    /// Waits until the container runs and answers on its own address: a TCP
    /// connection to its port, or a 2xx/3xx answer to the application's
    /// health-check path when it has one.
    async fn wait_healthy(
        &self,
        name: &str,
        instance: i32,
        probe: &Probe<'_>,
        log: &TaskLog,
    ) -> Result<(), TaskFailure> {
        let deadline = Instant::now() + self.health_timeout;
        let mut last_answer = None;
        loop {
            match self.engine.inspect(name).await {
                Ok(Some(Inspected {
                    state: ContainerState::Running,
                    address: Some(ip),
                    ..
                })) => match probe.check(&self.http, ip).await {
                    Ok(()) => return Ok(()),
                    Err(answer) => last_answer = answer,
                },
                Ok(Some(Inspected {
                    state: ContainerState::Exited | ContainerState::Dead,
                    exit_code,
                    ..
                })) => {
                    for line in self.engine.tail(name, 20).await {
                        log.line(format!("[instance {instance}] {line}"));
                    }
                    return Err(TaskFailure::app(format!(
                        "instance {instance} exited with code {exit_code} while starting; see the deploy log"
                    )));
                }
                Ok(None) => {
                    return Err(TaskFailure::node(format!(
                        "instance {instance} disappeared while starting"
                    )));
                }
                Ok(Some(_)) | Err(_) => {}
            }
            if Instant::now() >= deadline {
                let secs = self.health_timeout.as_secs();
                return Err(TaskFailure::app(match (probe.path, last_answer) {
                    (Some(path), Some(status)) => format!(
                        "instance {instance} answered {status} on its health check {path} \
                         for {secs} s; it must answer 2xx or 3xx"
                    ),
                    _ => format!(
                        "instance {instance} did not accept connections on port {} within {secs} s; \
                         check that the application listens on $PORT",
                        probe.port
                    ),
                }));
            }
            tokio::time::sleep(HEALTH_POLL).await;
        }
    }

    async fn stop(&self, target: &AppTarget, log: &TaskLog) -> Result<(), TaskFailure> {
        // Visitors see that it is stopped, not a broken gateway.
        self.ingress
            .stopped(
                target.app_id,
                Names {
                    hostnames: &target.hostnames,
                    certificates: &target.certificates,
                },
            )
            .await
            .map_err(TaskFailure::node)?;
        let containers = self
            .engine
            .managed(Some(target.app_id))
            .await
            .map_err(|e| docker("cannot list containers", &e))?;
        let all: Vec<&Managed> = containers.iter().collect();
        self.each(&all, log, Action::Stop).await
    }

    async fn delete(&self, target: &AppTarget, log: &TaskLog) -> Result<(), TaskFailure> {
        self.ingress
            .remove(target.app_id)
            .await
            .map_err(TaskFailure::node)?;
        let containers = self
            .engine
            .managed(Some(target.app_id))
            .await
            .map_err(|e| docker("cannot list containers", &e))?;
        let all: Vec<&Managed> = containers.iter().collect();
        self.each(&all, log, Action::Remove).await?;
        self.engine
            .remove_network_if_empty(target.user_id)
            .await
            .map_err(|e| docker("cannot remove the application network", &e))?;
        self.builder.remove_images(target.app_id).await;
        crate::images::remove_all(&self.engine, target.app_id).await;
        Ok(())
    }
}
