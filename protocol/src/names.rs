//! Deterministic names and labels of what an agent creates, so that every task
//! can look before it creates ("already there" is success) and a restarted
//! agent finds its containers again.

/// Label on everything SkyPanel manages; agents only ever touch what carries it.
pub const LABEL_MANAGED: &str = "skypanel.managed";
pub const LABEL_APP: &str = "skypanel.app";
pub const LABEL_USER: &str = "skypanel.user";
pub const LABEL_RELEASE: &str = "skypanel.release";
pub const LABEL_INSTANCE: &str = "skypanel.instance";
pub const LABEL_GENERATION: &str = "skypanel.generation";
pub const LABEL_DATABASE: &str = "skypanel.database";
/// A managed database container's engine (`postgresql`, `mysql` …).
pub const LABEL_DB_TYPE: &str = "skypanel.db-type";
/// The process type of an application container (absent: `web`).
pub const LABEL_PROCESS: &str = "skypanel.process";
/// What an application container is for besides its processes: `release`
/// (the release phase) or `run` (a one-off command).
pub const LABEL_ONE_OFF: &str = "skypanel.one-off";

/// The container of managed database `id`.
pub fn database_container(id: i64) -> String {
    format!("sp-db-{id}")
}

/// The named volume holding managed database `id`'s data.
pub fn database_volume(id: i64) -> String {
    format!("sp-db-{id}-data")
}

/// The name the customer's other containers reach database `id` by (an
/// alias on the customer's network).
pub fn database_host(id: i64) -> String {
    format!("sp-db-{id}")
}

/// The container of `instance` (0-based) of `release` of application `app_id`.
pub fn app_container(app_id: i64, release: i32, instance: i32) -> String {
    format!("sp-app-{app_id}-r{release}-{instance}")
}

/// A container of `instance` of `release` made anew by the command of
/// `generation` (a restart makes every instance again beside the old ones).
pub fn app_container_of(app_id: i64, release: i32, instance: i32, generation: i64) -> String {
    format!("{}-g{generation}", app_container(app_id, release, instance))
}

/// The bridge network all of one customer's containers share, and no one else's.
pub fn user_network(user_id: i64) -> String {
    format!("sp-user-{user_id}")
}

/// The container of `instance` of process type `process` of `release`:
/// `web`'s are [`app_container`]'s, the others' carry the type's name.
pub fn process_container(app_id: i64, release: i32, process: &str, instance: i32) -> String {
    if process == crate::procfile::WEB {
        app_container(app_id, release, instance)
    } else {
        format!("sp-app-{app_id}-r{release}-{process}-{instance}")
    }
}

/// A container of [`process_container`] made anew by the command of `generation`.
pub fn process_container_of(
    app_id: i64,
    release: i32,
    process: &str,
    instance: i32,
    generation: i64,
) -> String {
    format!(
        "{}-g{generation}",
        process_container(app_id, release, process, instance)
    )
}

/// The one-off container of run `run_id` of an application (`sky run`).
pub fn run_container(app_id: i64, run_id: i64) -> String {
    format!("sp-app-{app_id}-run-{run_id}")
}

/// The one-off container that runs `release`'s release phase.
pub fn release_phase_container(app_id: i64, release: i32) -> String {
    format!("sp-app-{app_id}-r{release}-release")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_names_are_deterministic() {
        assert_eq!(app_container(42, 3, 1), "sp-app-42-r3-1");
        assert_eq!(app_container_of(42, 3, 1, 17), "sp-app-42-r3-1-g17");
        assert_eq!(process_container(42, 3, "web", 1), "sp-app-42-r3-1");
        assert_eq!(
            process_container(42, 3, "worker", 1),
            "sp-app-42-r3-worker-1"
        );
        assert_eq!(
            process_container_of(42, 3, "worker", 0, 9),
            "sp-app-42-r3-worker-0-g9"
        );
        assert_eq!(release_phase_container(42, 3), "sp-app-42-r3-release");
        assert_eq!(user_network(7), "sp-user-7");
    }
}
