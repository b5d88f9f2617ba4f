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

/// Parses a name made by [`app_container`] back into (app, release, instance).
pub fn parse_app_container(name: &str) -> Option<(i64, i32, i32)> {
    let rest = name.trim_start_matches('/').strip_prefix("sp-app-")?;
    let (app, rest) = rest.split_once("-r")?;
    let (release, instance) = rest.split_once('-')?;
    let instance = instance.split_once("-g").map_or(instance, |(i, _)| i);
    Some((
        app.parse().ok()?,
        release.parse().ok()?,
        instance.parse().ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_names_round_trip() {
        let name = app_container(42, 3, 1);
        assert_eq!(name, "sp-app-42-r3-1");
        assert_eq!(parse_app_container(&name), Some((42, 3, 1)));
        assert_eq!(parse_app_container("/sp-app-42-r3-1"), Some((42, 3, 1)));
        assert_eq!(parse_app_container("postgres"), None);
        let again = app_container_of(42, 3, 1, 17);
        assert_eq!(again, "sp-app-42-r3-1-g17");
        assert_eq!(parse_app_container(&again), Some((42, 3, 1)));
        assert_eq!(parse_app_container("sp-app-x-r1-0"), None);
        assert_eq!(user_network(7), "sp-user-7");
    }
}
