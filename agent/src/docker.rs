//! Docker, through bollard: the application containers and customer networks
//! the agent manages (only what carries the `skypanel.managed` label), with
//! every operation idempotent ("already there", "already stopped" and "already
//! gone" are success).

use std::collections::HashMap;

use bollard::Docker;
use bollard::errors::Error as DockerError;
use bollard::models::{
    ContainerCreateBody, HostConfig, Ipam, IpamConfig, NetworkCreateRequest, PortBinding,
};
use bollard::query_parameters::{
    CreateContainerOptions, InspectContainerOptions, ListContainersOptions, RemoveContainerOptions,
    StartContainerOptions, StatsOptions, StopContainerOptions,
};
use futures::StreamExt;
use skypanel_protocol::database::{DatabaseSpec, Launch};
use skypanel_protocol::names::{
    LABEL_APP, LABEL_DATABASE, LABEL_DB_TYPE, LABEL_GENERATION, LABEL_INSTANCE, LABEL_MANAGED,
    LABEL_ONE_OFF, LABEL_PROCESS, LABEL_RELEASE, LABEL_USER, database_container, database_host,
    database_volume, process_container, process_container_of, release_phase_container,
    run_container, user_network,
};
use skypanel_protocol::node::ContainerState;
use skypanel_protocol::procfile::WEB;
use skypanel_protocol::task::AppSpec;

/// The only address application ports are published on: the ingress is the way in.
pub const PUBLISH_IP: &str = "127.0.0.1";

/// What `inspect` tells of one container.
#[derive(Debug, Clone, PartialEq)]
pub struct Inspected {
    pub state: ContainerState,
    pub exit_code: i64,
    /// The port published on [`PUBLISH_IP`].
    pub host_port: Option<i32>,
    /// The container's own address on its network. Health checks connect
    /// here: Docker's userland proxy accepts on the published port whether or
    /// not the application listens yet.
    pub address: Option<std::net::IpAddr>,
    /// A one-off container (a release phase, a run): never restarted.
    pub one_off: bool,
}

/// What an application container runs: a process type of its release, or
/// a one-off command.
#[derive(Debug, Clone, Copy)]
pub struct Role<'a> {
    /// `web` (the one with a published port), `worker` …
    pub process: &'a str,
    /// Run by `/bin/sh -c`; the image's own command when absent.
    pub command: Option<&'a str>,
    /// `release`, [`RUN`] or [`SESSION`] for a one-off container.
    pub one_off: Option<&'a str>,
    /// An attached run's container: its standard input open, and a
    /// terminal when `Some(true)`.
    pub session: Option<bool>,
}

/// The one-off label of a detached run's container (its output goes to the
/// application's logs).
pub const RUN: &str = "run";
/// The one-off label of an attached run's container (its output goes to its
/// caller only).
pub const SESSION: &str = "session";

impl Role<'_> {
    /// Whether it publishes the application's port (the web process only).
    fn serves(&self) -> bool {
        self.process == WEB && self.one_off.is_none()
    }
}

/// How a command run inside a container ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exited {
    pub code: i64,
    /// The last lines it wrote to standard error.
    pub stderr: String,
    /// Feeding its standard input failed (it stopped reading: its exit code
    /// and standard error usually say why).
    pub input_error: Option<String>,
}

/// Why a command could not be run inside a container.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("{}", short(.0))]
    Docker(#[from] DockerError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// A managed container as Docker lists it.
#[derive(Debug, Clone)]
pub struct Managed {
    pub id: String,
    pub name: String,
    pub app_id: i64,
    pub user_id: i64,
    pub release: i32,
    /// Its process type (`web` for containers made before types existed).
    pub process: String,
    pub instance: i32,
    pub generation: i64,
    pub state: ContainerState,
    pub host_port: Option<i32>,
    /// The image it runs (`sha256:…`).
    pub image_id: Option<String>,
    /// `release` or `run` for a one-off container (not an instance).
    pub one_off: Option<String>,
}

#[derive(Clone)]
pub struct Engine {
    docker: Docker,
    /// Prefixes every name and marks every label of this agent's objects, so
    /// that several agents (tests, or a test beside a local platform) can share
    /// one Docker without touching each other's containers. Empty in production.
    namespace: String,
    /// Where customer networks get their subnets.
    pool: Option<SubnetPool>,
    /// Serialises creating networks: Docker accepts two networks of one
    /// name created at once, and a name then means neither.
    creating_network: std::sync::Arc<tokio::sync::Mutex<()>>,
}

pub(crate) fn status_of(err: &DockerError) -> Option<u16> {
    match err {
        DockerError::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

fn label<T: std::str::FromStr>(labels: &HashMap<String, String>, key: &str) -> Option<T> {
    labels.get(key).and_then(|v| v.parse().ok())
}

/// The addresses customer networks are given: /24 subnets of one range.
/// Docker's own default pools hold about 31 bridge networks, far fewer than
/// a node's customers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubnetPool {
    /// The first address of the range.
    base: u32,
    /// How many /24 subnets it holds.
    count: u32,
}

impl std::str::FromStr for SubnetPool {
    type Err = String;

    /// An IPv4 range with a prefix of /8 to /24, such as `10.200.0.0/14`.
    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || format!("{text:?} is not an IPv4 range such as 10.200.0.0/14");
        let (address, prefix) = text.split_once('/').ok_or_else(bad)?;
        let address: std::net::Ipv4Addr = address.parse().map_err(|_| bad())?;
        let prefix: u32 = prefix.parse().map_err(|_| bad())?;
        if !(8..=24).contains(&prefix) {
            return Err(format!("{text:?}: the prefix must be /8 to /24"));
        }
        let mask = u32::MAX << (32 - prefix);
        Ok(Self {
            base: u32::from(address) & mask,
            count: 1 << (24 - prefix),
        })
    }
}

impl SubnetPool {
    /// Subnet `index` (modulo the pool's size) and its gateway.
    pub fn subnet(&self, index: u64) -> (String, String) {
        let offset = u32::try_from(index % u64::from(self.count)).unwrap_or(0);
        let network = std::net::Ipv4Addr::from(self.base + offset * 256);
        let gateway = std::net::Ipv4Addr::from(self.base + offset * 256 + 1);
        (format!("{network}/24"), gateway.to_string())
    }

    pub fn len(&self) -> u32 {
        self.count
    }
}

/// Subnets tried before a network creation gives up (they are taken by
/// other networks on this Docker).
const SUBNET_PROBES: u64 = 64;

impl Engine {
    /// Connects to the local Docker. Customer networks take their subnets
    /// from `pool`, or from Docker's own default pools without one.
    pub fn connect(namespace: String, pool: Option<SubnetPool>) -> anyhow::Result<Self> {
        Ok(Self {
            docker: Docker::connect_with_defaults()?,
            namespace,
            pool,
            creating_network: std::sync::Arc::default(),
        })
    }

    /// The prefix of this agent's names (empty on a worker node).
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The value of the managed label on this agent's objects.
    pub fn managed_value(&self) -> String {
        if self.namespace.is_empty() {
            "true".into()
        } else {
            self.namespace.clone()
        }
    }

    /// The label filter that selects this agent's objects.
    pub fn managed_filter(&self) -> String {
        format!("{LABEL_MANAGED}={}", self.managed_value())
    }

    /// The container of `instance` of process type `process` of `release`.
    pub fn container_name(
        &self,
        app_id: i64,
        release: i32,
        process: &str,
        instance: i32,
    ) -> String {
        format!(
            "{}{}",
            self.namespace,
            process_container(app_id, release, process, instance)
        )
    }

    /// The container of [`Engine::container_name`] made anew by `generation`.
    pub fn container_name_of(
        &self,
        app_id: i64,
        release: i32,
        process: &str,
        instance: i32,
        generation: i64,
    ) -> String {
        format!(
            "{}{}",
            self.namespace,
            process_container_of(app_id, release, process, instance, generation)
        )
    }

    /// The one-off container of `release`'s release phase.
    /// The container of one-off run `run_id`.
    pub fn run_name(&self, app_id: i64, run_id: i64) -> String {
        format!("{}{}", self.namespace, run_container(app_id, run_id))
    }

    pub fn release_phase_name(&self, app_id: i64, release: i32) -> String {
        format!(
            "{}{}",
            self.namespace,
            release_phase_container(app_id, release)
        )
    }

    fn network_name(&self, user_id: i64) -> String {
        format!("{}{}", self.namespace, user_network(user_id))
    }

    pub async fn ping(&self) -> Result<(), DockerError> {
        self.docker.ping().await.map(|_| ())
    }

    pub fn raw(&self) -> &Docker {
        &self.docker
    }

    /// Managed containers, of one application or all.
    pub async fn managed(&self, app_id: Option<i64>) -> Result<Vec<Managed>, DockerError> {
        let mut labels = vec![self.managed_filter()];
        if let Some(app) = app_id {
            labels.push(format!("{LABEL_APP}={app}"));
        }
        let options = ListContainersOptions {
            all: true,
            filters: Some(HashMap::from([("label".to_string(), labels)])),
            ..Default::default()
        };
        let list = self.docker.list_containers(Some(options)).await?;
        Ok(list
            .into_iter()
            .filter_map(|c| {
                let labels = c.labels.unwrap_or_default();
                let name = c.names?.first()?.trim_start_matches('/').to_string();
                let host_port = c
                    .ports
                    .unwrap_or_default()
                    .iter()
                    .find(|p| p.ip.as_deref() == Some(PUBLISH_IP))
                    .and_then(|p| p.public_port)
                    .map(i32::from);
                Some(Managed {
                    image_id: c.image_id,
                    id: c.id?,
                    name,
                    app_id: label(&labels, LABEL_APP)?,
                    user_id: label(&labels, LABEL_USER).unwrap_or(0),
                    release: label(&labels, LABEL_RELEASE)?,
                    process: labels
                        .get(LABEL_PROCESS)
                        .cloned()
                        .unwrap_or_else(|| WEB.to_string()),
                    one_off: labels.get(LABEL_ONE_OFF).cloned(),
                    instance: label(&labels, LABEL_INSTANCE)?,
                    generation: label(&labels, LABEL_GENERATION).unwrap_or(0),
                    state: ContainerState::from_docker(
                        &c.state.map(|s| s.to_string()).unwrap_or_default(),
                    ),
                    host_port,
                })
            })
            .collect())
    }

    /// The customer's bridge network, created if missing.
    pub async fn ensure_network(&self, user_id: i64) -> Result<String, DockerError> {
        let labels = HashMap::from([
            (LABEL_MANAGED.to_string(), self.managed_value()),
            (LABEL_USER.to_string(), user_id.to_string()),
        ]);
        // The customer's own subnet first, then the next ones while they are taken.
        let first = u64::try_from(user_id).unwrap_or(0);
        self.ensure_named_network(self.network_name(user_id), labels, HashMap::new(), first)
            .await
    }

    /// The network builds run on: a bridge whose containers cannot talk to
    /// each other, with an interface name the firewall knows
    /// ([`Engine::build_bridge`]), created if missing.
    pub async fn ensure_build_network(&self) -> Result<String, DockerError> {
        let labels = HashMap::from([(LABEL_MANAGED.to_string(), self.managed_value())]);
        let options = HashMap::from([
            (
                "com.docker.network.bridge.enable_icc".to_string(),
                "false".to_string(),
            ),
            (
                "com.docker.network.bridge.name".to_string(),
                self.build_bridge(),
            ),
        ]);
        // The pool's last subnet first (customers' start at the front).
        let first = self.pool.map_or(0, |p| u64::from(p.len()) - 1);
        self.ensure_named_network(
            format!("{}sp-builds", self.namespace),
            labels,
            options,
            first,
        )
        .await
    }

    /// A bridge network of this name, created if missing with a subnet of
    /// the pool (subnet `first`, then the next ones while they are taken) or
    /// of Docker's own pools without one. Two tasks creating it at once
    /// make one.
    async fn ensure_named_network(
        &self,
        name: String,
        labels: HashMap<String, String>,
        options: HashMap<String, String>,
        first: u64,
    ) -> Result<String, DockerError> {
        if self.docker.inspect_network(&name, None).await.is_ok() {
            return Ok(name);
        }
        let _creating = self.creating_network.lock().await;
        if self.docker.inspect_network(&name, None).await.is_ok() {
            return Ok(name);
        }
        let request = |subnet: Option<(String, String)>| NetworkCreateRequest {
            name: name.clone(),
            driver: Some("bridge".into()),
            labels: Some(labels.clone()),
            options: (!options.is_empty()).then(|| options.clone()),
            ipam: subnet.map(|(subnet, gateway)| Ipam {
                config: Some(vec![IpamConfig {
                    subnet: Some(subnet),
                    gateway: Some(gateway),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let Some(pool) = self.pool else {
            return match self.docker.create_network(request(None)).await {
                Ok(_) => Ok(name),
                // Created meanwhile by a concurrent task: fine.
                Err(err) if status_of(&err) == Some(409) => Ok(name),
                Err(err) => Err(err),
            };
        };
        let mut last = None;
        for probe in 0..SUBNET_PROBES.min(u64::from(pool.len())) {
            match self
                .docker
                .create_network(request(Some(pool.subnet(first + probe))))
                .await
            {
                Ok(_) => return Ok(name),
                Err(err) if status_of(&err) == Some(409) => return Ok(name),
                Err(err) if short(&err).contains("overlap") => last = Some(err),
                Err(err) => return Err(err),
            }
        }
        Err(
            last.unwrap_or_else(|| DockerError::DockerResponseServerError {
                status_code: 503,
                message: "the network pool has no free subnet".into(),
            }),
        )
    }

    /// The interface name of the builds' bridge: `spb-` and a digest of the
    /// namespace (every agent's starts `spb-`, which the firewall matches).
    pub fn build_bridge(&self) -> String {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::hash::DefaultHasher::new();
        self.namespace.hash(&mut hasher);
        format!("spb-{:08x}", hasher.finish() as u32)
    }

    /// Removes the customer's network when no container uses it any more.
    pub async fn remove_network_if_empty(&self, user_id: i64) -> Result<(), DockerError> {
        let name = self.network_name(user_id);
        let network = match self.docker.inspect_network(&name, None).await {
            Ok(network) => network,
            Err(err) if status_of(&err) == Some(404) => return Ok(()),
            Err(err) => return Err(err),
        };
        if network.containers.is_some_and(|c| !c.is_empty()) {
            return Ok(());
        }
        match self.docker.remove_network(&name).await {
            Ok(()) => Ok(()),
            Err(err) if matches!(status_of(&err), Some(404 | 403 | 409)) => Ok(()),
            Err(err) => Err(err),
        }
    }

    /// Creates container `name` of `instance` from `image` (the release's
    /// image id) in `role` unless it exists. Its root file system is
    /// read-only, with a writable /tmp; only the web process publishes a port.
    pub async fn ensure_container(
        &self,
        spec: &AppSpec,
        image: &str,
        name: &str,
        instance: i32,
        role: Role<'_>,
        network: &str,
    ) -> Result<(), DockerError> {
        let name = name.to_string();
        if self
            .docker
            .inspect_container(&name, None::<InspectContainerOptions>)
            .await
            .is_ok()
        {
            return Ok(());
        }
        let port = format!("{}/tcp", spec.port);
        let env: Vec<String> = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut labels = HashMap::from([
            (LABEL_MANAGED.to_string(), self.managed_value()),
            (LABEL_APP.to_string(), spec.app_id.to_string()),
            (LABEL_USER.to_string(), spec.user_id.to_string()),
            (LABEL_RELEASE.to_string(), spec.release.to_string()),
            (LABEL_INSTANCE.to_string(), instance.to_string()),
            (LABEL_GENERATION.to_string(), spec.generation.to_string()),
            (LABEL_PROCESS.to_string(), role.process.to_string()),
        ]);
        if let Some(one_off) = role.one_off {
            labels.insert(LABEL_ONE_OFF.to_string(), one_off.to_string());
        }
        let host = HostConfig {
            memory: Some(i64::from(spec.memory_mb) * 1024 * 1024),
            nano_cpus: Some(i64::from(spec.cpu_millicores) * 1_000_000),
            pids_limit: Some(i64::from(spec.pids_limit)),
            cap_drop: Some(vec!["ALL".into()]),
            security_opt: Some(vec!["no-new-privileges".into()]),
            privileged: Some(false),
            // A minimal init as PID 1 forwards signals (so stops are graceful)
            // and reaps zombies, whatever the image's own process does.
            init: Some(true),
            network_mode: Some(network.to_string()),
            // Nothing of the image can be changed; /tmp is the one writable
            // place, in memory (counted against the plan's memory), and gone
            // with the container, like a Heroku dyno's file system.
            readonly_rootfs: Some(true),
            tmpfs: Some(HashMap::from([(
                "/tmp".to_string(),
                format!("rw,nosuid,nodev,size={}m,mode=1777", tmp_mb(spec.memory_mb)),
            )])),
            port_bindings: role.serves().then(|| {
                HashMap::from([(
                    port.clone(),
                    Some(vec![PortBinding {
                        host_ip: Some(PUBLISH_IP.into()),
                        host_port: Some(String::new()),
                    }]),
                )])
            }),
            ..Default::default()
        };
        let body = ContainerCreateBody {
            image: Some(image.to_string()),
            env: Some(env),
            labels: Some(labels),
            exposed_ports: role.serves().then(|| vec![port]),
            // Heroku runs a Procfile's command with `/bin/sh -c`; the
            // image's entry point, if any, gets it as its arguments.
            cmd: role
                .command
                .map(|c| vec!["/bin/sh".to_string(), "-c".to_string(), c.to_string()]),
            open_stdin: role.session.map(|_| true),
            stdin_once: role.session.map(|_| true),
            attach_stdin: role.session.map(|_| true),
            attach_stdout: role.session.map(|_| true),
            attach_stderr: role.session.map(|_| true),
            tty: role.session,
            host_config: Some(host),
            ..Default::default()
        };
        self.create_named(name, body).await.map(|_| ())
    }

    /// Creates a container named `name`; one created meanwhile under that
    /// name (a retried task) is the same container.
    async fn create_named(
        &self,
        name: String,
        body: ContainerCreateBody,
    ) -> Result<String, DockerError> {
        let options = CreateContainerOptions {
            name: Some(name.clone()),
            ..Default::default()
        };
        match self.docker.create_container(Some(options), body).await {
            Ok(_) => Ok(name),
            Err(err) if status_of(&err) == Some(409) => Ok(name),
            Err(err) => Err(err),
        }
    }

    /// The container of managed database `id`.
    pub fn database_container_name(&self, id: i64) -> String {
        format!("{}{}", self.namespace, database_container(id))
    }

    /// The node's running managed databases: id, container name and engine
    /// (from its label, or for a container made before the label existed,
    /// from the official image's variables it was started with).
    pub async fn running_databases(&self) -> Result<Vec<(i64, String, String)>, DockerError> {
        let options = ListContainersOptions {
            all: false,
            filters: Some(HashMap::from([(
                "label".to_string(),
                vec![self.managed_filter(), LABEL_DATABASE.to_string()],
            )])),
            ..Default::default()
        };
        let mut found = Vec::new();
        for c in self.docker.list_containers(Some(options)).await? {
            let labels = c.labels.unwrap_or_default();
            let Some(id) = label::<i64>(&labels, LABEL_DATABASE) else {
                continue;
            };
            let Some(name) = c
                .names
                .and_then(|n| n.first().map(|n| n.trim_start_matches('/').to_string()))
            else {
                continue;
            };
            let db_type = match labels.get(LABEL_DB_TYPE) {
                Some(t) => t.clone(),
                None => {
                    let info = self
                        .docker
                        .inspect_container(&name, None::<InspectContainerOptions>)
                        .await?;
                    let config = info.config.unwrap_or_default();
                    let env = config.env.unwrap_or_default();
                    let has = |key: &str| env.iter().any(|e| e.starts_with(key));
                    if has("POSTGRES_PASSWORD=") {
                        "postgresql".into()
                    } else if has("MYSQL_ROOT_PASSWORD=") {
                        "mysql".into()
                    } else if has("MONGO_INITDB_ROOT_PASSWORD=") {
                        "mongodb".into()
                    } else if config
                        .cmd
                        .is_some_and(|c| c.first().is_some_and(|p| p == "redis-server"))
                    {
                        "redis".into()
                    } else {
                        continue;
                    }
                }
            };
            found.push((id, name, db_type));
        }
        Ok(found)
    }

    /// The managed database whose container is named `name`, if it is one.
    pub fn database_id_of(&self, name: &str) -> Option<i64> {
        let prefix = self.database_container_name(0);
        let prefix = prefix.strip_suffix('0')?;
        name.strip_prefix(prefix)?.parse().ok()
    }

    /// The volume of managed database `id`.
    pub fn database_volume_name(&self, id: i64) -> String {
        format!("{}{}", self.namespace, database_volume(id))
    }

    /// Creates a managed database's data volume and container unless they
    /// exist; answers the container's name. The container has the plan's
    /// limits and the applications' hardening (with the few capabilities
    /// an engine's entry point needs to hand its files to its own user), is
    /// on the customer's network only (reachable there as
    /// `sp-db-<id>`), and publishes no port.
    pub async fn ensure_database(
        &self,
        spec: &DatabaseSpec,
        launch: &Launch,
        network: &str,
    ) -> Result<String, DockerError> {
        let name = self.database_container_name(spec.database_id);
        if self
            .docker
            .inspect_container(&name, None::<InspectContainerOptions>)
            .await
            .is_ok()
        {
            return Ok(name);
        }
        let labels = HashMap::from([
            (LABEL_MANAGED.to_string(), self.managed_value()),
            (LABEL_DATABASE.to_string(), spec.database_id.to_string()),
            (LABEL_DB_TYPE.to_string(), spec.db_type.clone()),
            (LABEL_USER.to_string(), spec.user_id.to_string()),
        ]);
        let volume = self.database_volume_name(spec.database_id);
        self.docker
            .create_volume(bollard::models::VolumeCreateRequest {
                name: Some(volume.clone()),
                labels: Some(labels.clone()),
                ..Default::default()
            })
            .await?;
        let host = HostConfig {
            memory: Some(i64::from(spec.memory_mb) * 1024 * 1024),
            nano_cpus: Some(i64::from(spec.cpu_millicores) * 1_000_000),
            pids_limit: Some(i64::from(spec.pids_limit)),
            cap_drop: Some(vec!["ALL".into()]),
            cap_add: Some(
                ["CHOWN", "DAC_OVERRIDE", "FOWNER", "SETGID", "SETUID"]
                    .map(String::from)
                    .to_vec(),
            ),
            security_opt: Some(vec!["no-new-privileges".into()]),
            privileged: Some(false),
            init: Some(true),
            network_mode: Some(network.to_string()),
            mounts: Some(vec![bollard::models::Mount {
                target: Some(launch.data_dir.to_string()),
                source: Some(volume),
                typ: Some(bollard::models::MountType::VOLUME),
                ..Default::default()
            }]),
            ..Default::default()
        };
        let endpoint = bollard::models::EndpointSettings {
            aliases: Some(vec![database_host(spec.database_id)]),
            ..Default::default()
        };
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            env: Some(launch.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            cmd: launch.cmd.clone(),
            labels: Some(labels),
            host_config: Some(host),
            networking_config: Some(bollard::models::NetworkingConfig {
                endpoints_config: Some(HashMap::from([(network.to_string(), endpoint)])),
            }),
            ..Default::default()
        };
        let name = self.create_named(name, body).await?;
        if !launch.files.is_empty() {
            let archive =
                files_archive(&launch.files).map_err(|e| DockerError::IOError { err: e })?;
            let options = bollard::query_parameters::UploadToContainerOptions {
                path: "/".to_string(),
                ..Default::default()
            };
            self.docker
                .upload_to_container(&name, Some(options), bollard::body_full(archive.into()))
                .await?;
        }
        Ok(name)
    }

    /// Cuts a database off its customer's network (a moving database:
    /// nothing can write to it while it is dumped); its engine's own
    /// clients inside the container still reach it.
    pub async fn isolate_database(
        &self,
        database_id: i64,
        user_id: i64,
    ) -> Result<(), DockerError> {
        let request = bollard::models::NetworkDisconnectRequest {
            container: self.database_container_name(database_id),
            force: Some(true),
        };
        match self
            .docker
            .disconnect_network(&self.network_name(user_id), request)
            .await
        {
            Err(err) if short(&err).contains("is not connected") => Ok(()),
            other => other,
        }
    }

    /// Puts a database back on its customer's network, under its host name
    /// (undoes [`Engine::isolate_database`]; one on it already is left so).
    pub async fn rejoin_database(&self, database_id: i64, user_id: i64) -> Result<(), DockerError> {
        let request = bollard::models::NetworkConnectRequest {
            container: self.database_container_name(database_id),
            endpoint_config: Some(bollard::models::EndpointSettings {
                aliases: Some(vec![database_host(database_id)]),
                ..Default::default()
            }),
        };
        match self
            .docker
            .connect_network(&self.network_name(user_id), request)
            .await
        {
            Err(err) if short(&err).contains("already exists") => Ok(()),
            other => other,
        }
    }

    /// Whether the database's container exists with other limits, another
    /// image or another command than `spec` and `launch` ask for (its plan
    /// changed, or an older agent started it differently): it must be made again.
    pub async fn database_outdated(
        &self,
        spec: &DatabaseSpec,
        launch: &Launch,
    ) -> Result<bool, DockerError> {
        let name = self.database_container_name(spec.database_id);
        let info = match self
            .docker
            .inspect_container(&name, None::<InspectContainerOptions>)
            .await
        {
            Ok(info) => info,
            Err(err) if status_of(&err) == Some(404) => return Ok(false),
            Err(err) => return Err(err),
        };
        let host = info.host_config.unwrap_or_default();
        let config = info.config.unwrap_or_default();
        let cmd_differs = launch
            .cmd
            .as_ref()
            .is_some_and(|cmd| config.cmd.as_ref() != Some(cmd));
        Ok(host.memory != Some(i64::from(spec.memory_mb) * 1024 * 1024)
            || host.nano_cpus != Some(i64::from(spec.cpu_millicores) * 1_000_000)
            || host.pids_limit != Some(i64::from(spec.pids_limit))
            || config.image.as_deref() != Some(spec.image.as_str())
            || cmd_differs)
    }

    /// Runs `cmd` with `env` inside container `name`: `stdin`, when given,
    /// is fed to it (then closed), its standard output goes to `stdout`.
    /// Answers its exit code and the last lines of its standard error.
    pub async fn exec(
        &self,
        name: &str,
        cmd: Vec<String>,
        env: Vec<String>,
        stdin: Option<tokio::fs::File>,
        stdout: &mut (dyn tokio::io::AsyncWrite + Send + Unpin),
    ) -> Result<Exited, ExecError> {
        use bollard::container::LogOutput;
        use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
        use tokio::io::AsyncWriteExt;
        let options = CreateExecOptions {
            cmd: Some(cmd),
            env: Some(env),
            attach_stdin: Some(stdin.is_some()),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            ..Default::default()
        };
        let created = self.docker.create_exec(name, options).await?;
        let started = self
            .docker
            .start_exec(&created.id, None::<StartExecOptions>)
            .await?;
        let StartExecResults::Attached {
            mut output,
            mut input,
        } = started
        else {
            return Err(ExecError::Io(std::io::Error::other(
                "the exec did not attach",
            )));
        };
        // A command that stops reading early (it failed) breaks the pipe:
        // that is kept apart, so its own exit code and words are what count.
        let feed = async {
            if let Some(mut file) = stdin {
                tokio::io::copy(&mut file, &mut input).await?;
                input.shutdown().await?;
            }
            Ok::<_, std::io::Error>(())
        };
        let mut stderr = Vec::new();
        let drain = async {
            while let Some(chunk) = output.next().await {
                match chunk? {
                    LogOutput::StdOut { message } => stdout.write_all(&message).await?,
                    LogOutput::StdErr { message } | LogOutput::Console { message } => {
                        stderr.extend_from_slice(&message);
                        if stderr.len() > 64 * 1024 {
                            stderr.drain(..stderr.len() - 16 * 1024);
                        }
                    }
                    LogOutput::StdIn { .. } => {}
                }
            }
            stdout.flush().await?;
            Ok::<_, ExecError>(())
        };
        let (fed, drained) = tokio::join!(feed, drain);
        drained?;
        let inspected = self.docker.inspect_exec(&created.id).await?;
        let text = String::from_utf8_lossy(&stderr);
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let tail = lines[lines.len().saturating_sub(5)..].join("\n");
        Ok(Exited {
            code: inspected.exit_code.unwrap_or(-1),
            stderr: tail,
            input_error: fed.err().map(|e| e.to_string()),
        })
    }

    /// Extracts the tar archive at `tar` into `path` of container `name`
    /// (a stopped one too: its volumes are mounted for it).
    pub async fn upload(
        &self,
        name: &str,
        path: &str,
        tar: tokio::fs::File,
    ) -> Result<(), DockerError> {
        let options = bollard::query_parameters::UploadToContainerOptions {
            path: path.to_string(),
            ..Default::default()
        };
        let stream = tokio_util::io::ReaderStream::new(tar);
        self.docker
            .upload_to_container(name, Some(options), bollard::body_try_stream(stream))
            .await
    }

    /// Removes a managed database's container and, with `purge`, its data volume.
    pub async fn remove_database(&self, id: i64, purge: bool) -> Result<(), DockerError> {
        self.remove(&self.database_container_name(id)).await?;
        if purge {
            match self
                .docker
                .remove_volume(
                    &self.database_volume_name(id),
                    None::<bollard::query_parameters::RemoveVolumeOptions>,
                )
                .await
            {
                Ok(()) => {}
                Err(err) if status_of(&err) == Some(404) => {}
                Err(err) => return Err(err),
            }
        }
        Ok(())
    }

    pub async fn start(&self, name: &str) -> Result<(), DockerError> {
        match self
            .docker
            .start_container(name, None::<StartContainerOptions>)
            .await
        {
            Ok(()) => Ok(()),
            Err(err) if status_of(&err) == Some(304) => Ok(()),
            Err(err) => Err(err),
        }
    }

    pub async fn stop(&self, name: &str, grace_secs: i32) -> Result<(), DockerError> {
        let options = StopContainerOptions {
            t: Some(grace_secs),
            ..Default::default()
        };
        match self.docker.stop_container(name, Some(options)).await {
            Ok(()) => Ok(()),
            Err(err) if matches!(status_of(&err), Some(304 | 404)) => Ok(()),
            Err(err) => Err(err),
        }
    }

    pub async fn remove(&self, name: &str) -> Result<(), DockerError> {
        let options = RemoveContainerOptions {
            force: true,
            ..Default::default()
        };
        match self.docker.remove_container(name, Some(options)).await {
            Ok(()) => Ok(()),
            Err(err) if matches!(status_of(&err), Some(404 | 409)) => Ok(()),
            Err(err) => Err(err),
        }
    }

    /// The container's state, exit code, published port and address, if it exists.
    pub async fn inspect(&self, name: &str) -> Result<Option<Inspected>, DockerError> {
        let info = match self
            .docker
            .inspect_container(name, None::<InspectContainerOptions>)
            .await
        {
            Ok(info) => info,
            Err(err) if status_of(&err) == Some(404) => return Ok(None),
            Err(err) => return Err(err),
        };
        let state = info.state.unwrap_or_default();
        let status = state.status.map(|s| s.to_string()).unwrap_or_default();
        let settings = info.network_settings.unwrap_or_default();
        let host_port = settings
            .ports
            .unwrap_or_default()
            .into_values()
            .flatten()
            .flatten()
            .find(|b| b.host_ip.as_deref() == Some(PUBLISH_IP))
            .and_then(|b| b.host_port)
            .and_then(|p| p.parse().ok());
        let address = settings
            .networks
            .unwrap_or_default()
            .into_values()
            .filter_map(|n| n.ip_address)
            .find_map(|ip| ip.parse().ok());
        let one_off = info
            .config
            .and_then(|c| c.labels)
            .is_some_and(|l| l.contains_key(LABEL_ONE_OFF));
        Ok(Some(Inspected {
            state: ContainerState::from_docker(&status),
            exit_code: state.exit_code.unwrap_or(0),
            host_port,
            address,
            one_off,
        }))
    }

    /// Waits until the container exits; answers its exit code.
    pub async fn wait_exit(&self, name: &str) -> Result<i64, DockerError> {
        let mut waits = self.docker.wait_container(
            name,
            None::<bollard::query_parameters::WaitContainerOptions>,
        );
        match waits.next().await {
            Some(Ok(answer)) => Ok(answer.status_code),
            // bollard answers a non-zero exit as an error carrying the code.
            Some(Err(DockerError::DockerContainerWaitError { code, .. })) => Ok(code),
            Some(Err(err)) => Err(err),
            None => Ok(self.inspect(name).await?.map_or(-1, |i| i.exit_code)),
        }
    }

    /// Copies what the container writes, line by line, into `log` as
    /// `[prefix] line` until the container's output ends.
    pub async fn follow_output(&self, name: &str, log: &crate::tasklog::TaskLog, prefix: &str) {
        let options = bollard::query_parameters::LogsOptions {
            follow: true,
            stdout: true,
            stderr: true,
            ..Default::default()
        };
        let mut stream = self.docker.logs(name, Some(options));
        let mut partial = String::new();
        while let Some(Ok(chunk)) = stream.next().await {
            partial.push_str(&chunk.to_string());
            while let Some(end) = partial.find('\n') {
                let line: String = partial.drain(..=end).collect();
                log.line(format!("[{prefix}] {}", line.trim_end()));
            }
        }
        if !partial.trim().is_empty() {
            log.line(format!("[{prefix}] {}", partial.trim_end()));
        }
    }

    /// The last lines the container wrote (for a failure's task log).
    pub async fn tail(&self, name: &str, lines: usize) -> Vec<String> {
        let options = bollard::query_parameters::LogsOptions {
            stdout: true,
            stderr: true,
            tail: lines.to_string(),
            ..Default::default()
        };
        let mut stream = self.docker.logs(name, Some(options));
        let mut out = Vec::new();
        while let Some(Ok(chunk)) = stream.next().await {
            out.extend(chunk.to_string().lines().map(str::to_string));
        }
        out
    }

    /// CPU time used (ns) and the system's (ns), and memory in use (bytes).
    pub async fn usage(&self, id: &str) -> Option<(u64, u64, u32, u64)> {
        let options = StatsOptions {
            stream: false,
            one_shot: true,
        };
        let stats = self.docker.stats(id, Some(options)).next().await?.ok()?;
        let cpu = stats.cpu_stats?;
        let total = cpu.cpu_usage?.total_usage?;
        let system = cpu.system_cpu_usage.unwrap_or(0);
        let cpus = cpu.online_cpus.unwrap_or(1);
        let memory = stats.memory_stats.and_then(|m| m.usage).unwrap_or(0);
        Some((total, system, cpus, memory))
    }
}

/// A Docker error in a few words (the daemon's own message).
pub fn short(err: &DockerError) -> String {
    match err {
        DockerError::DockerResponseServerError { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

/// The size of an application container's /tmp: half its memory limit, at
/// least 8 MB (its pages count against the limit anyway).
fn tmp_mb(memory_mb: i32) -> i32 {
    (memory_mb / 2).max(8)
}

/// A tar archive of `files` (absolute paths, with their folders), to be
/// extracted at `/` of a container: mode 0644 files in 0755 folders.
fn files_archive(files: &[(&str, String)]) -> std::io::Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut folders = std::collections::BTreeSet::new();
    for (path, _) in files {
        let mut folder = std::path::Path::new(path.trim_start_matches('/')).parent();
        while let Some(f) = folder.filter(|f| !f.as_os_str().is_empty()) {
            folders.insert(f.to_path_buf());
            folder = f.parent();
        }
    }
    for folder in folders {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(0o755);
        header.set_size(0);
        header.set_mtime(0);
        tar.append_data(&mut header, folder, std::io::empty())?;
    }
    for (path, content) in files {
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o644);
        header.set_size(content.len() as u64);
        header.set_mtime(0);
        tar.append_data(
            &mut header,
            path.trim_start_matches('/'),
            content.as_bytes(),
        )?;
    }
    tar.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pool_is_cut_into_24s_from_its_masked_base() {
        let pool: SubnetPool = "10.200.7.9/14".parse().unwrap();
        assert_eq!(pool.len(), 1024);
        assert_eq!(
            pool.subnet(0),
            ("10.200.0.0/24".to_string(), "10.200.0.1".to_string())
        );
        assert_eq!(pool.subnet(257).0, "10.201.1.0/24");
        // Indexes wrap around the pool.
        assert_eq!(pool.subnet(1024 + 3), pool.subnet(3));
        let single: SubnetPool = "192.168.50.0/24".parse().unwrap();
        assert_eq!(single.len(), 1);
        for bad in [
            "10.0.0.0",
            "10.0.0.0/25",
            "10.0.0.0/7",
            "x/16",
            "10.0.0.300/16",
        ] {
            assert!(bad.parse::<SubnetPool>().is_err(), "{bad}");
        }
    }

    /// More customer networks than Docker's default pools hold (about 31),
    /// on the real Docker; customers whose first subnets collide each get a
    /// free one.
    #[tokio::test]
    async fn docker_a_node_holds_more_customer_networks_than_dockers_default_pools() {
        let namespace = format!("t{}-", &uuid::Uuid::new_v4().simple().to_string()[..10]);
        // A pool of 64 subnets of its own (one of 32, so that runs at the same
        // time rarely share one): users 1 and 65 start on the same subnet.
        let seed = uuid::Uuid::new_v4().as_bytes()[0];
        let pool: SubnetPool = format!("10.{}.{}.0/18", 220 + seed % 8, (seed / 8 % 4) * 64)
            .parse()
            .unwrap();
        let engine = Engine::connect(namespace, Some(pool)).unwrap();
        let users: Vec<i64> = (1..=40).chain([65]).collect();
        let mut subnets = std::collections::HashSet::new();
        let mut outcome = Ok(());
        for &user in &users {
            if let Err(err) = engine.ensure_network(user).await {
                outcome = Err(format!("network of user {user}: {}", short(&err)));
                break;
            }
            let info = engine
                .raw()
                .inspect_network(&engine.network_name(user), None)
                .await
                .unwrap();
            let subnet = info.ipam.and_then(|i| i.config).unwrap_or_default()[0]
                .subnet
                .clone()
                .unwrap();
            assert!(subnets.insert(subnet.clone()), "{subnet} given twice");
        }
        // Asking again is fine, and answers the same network.
        if outcome.is_ok() {
            outcome = engine
                .ensure_network(65)
                .await
                .map(|_| ())
                .map_err(|e| short(&e));
        }
        for &user in &users {
            engine.remove_network_if_empty(user).await.unwrap();
        }
        outcome.unwrap();
        assert_eq!(subnets.len(), users.len());
    }
}
