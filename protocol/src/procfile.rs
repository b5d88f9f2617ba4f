//! A release's process types: Heroku's `Procfile` format (`name: command`
//! per line), read by the builder from the repository and checked again by
//! the control plane. `web` is the one process that gets a port, a health
//! check and the ingress; `release` is not a process but the release phase's
//! command, run once per new release before any process starts.

use std::collections::BTreeMap;

/// The process type that serves HTTP.
pub const WEB: &str = "web";
/// The Procfile entry that is the release phase's command.
pub const RELEASE: &str = "release";
/// The largest Procfile read (bytes).
pub const MAX_BYTES: usize = 64 * 1024;
/// The most process types a release may declare.
pub const MAX_TYPES: usize = 20;
/// The longest command (bytes).
pub const MAX_COMMAND: usize = 4096;

/// Why a Procfile or a process type is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// Whether `name` can be a process type: 1 to 30 characters of `a-z`, `0-9`,
/// `_` and `-`, starting with a letter (it becomes part of container names).
pub fn check_type(name: &str) -> Result<(), Refused> {
    let ok = (1..=30).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(Refused(format!(
            "process type {name:?} must be 1 to 30 characters of a-z, 0-9, '_' and '-', starting with a letter"
        )))
    }
}

/// Whether `command` can be a process's command: not blank, one line, at
/// most [`MAX_COMMAND`] bytes, no NUL.
pub fn check_command(name: &str, command: &str) -> Result<(), Refused> {
    if command.trim().is_empty() {
        return Err(Refused(format!("process type {name:?} has no command")));
    }
    if command.len() > MAX_COMMAND || command.contains(['\n', '\r', '\0']) {
        return Err(Refused(format!(
            "the command of process type {name:?} must be one line of at most {MAX_COMMAND} bytes"
        )));
    }
    Ok(())
}

/// Checks a declared set of processes (an image application's, given in
/// the API) as a Procfile's would be.
pub fn check(processes: &BTreeMap<String, String>) -> Result<(), Refused> {
    if processes.len() > MAX_TYPES {
        return Err(Refused(format!(
            "at most {MAX_TYPES} process types, got {}",
            processes.len()
        )));
    }
    for (name, command) in processes {
        check_type(name)?;
        check_command(name, command)?;
    }
    Ok(())
}

/// Parses a Procfile: `name: command` lines; blank lines and lines starting
/// with `#` are skipped. A line that is neither, a name used twice or a
/// refused name fails with the line's number.
pub fn parse(text: &str) -> Result<BTreeMap<String, String>, Refused> {
    if text.len() > MAX_BYTES {
        return Err(Refused(format!(
            "the Procfile is larger than {} KiB",
            MAX_BYTES / 1024
        )));
    }
    let mut processes = BTreeMap::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((name, command)) = line.split_once(':') else {
            return Err(Refused(format!(
                "Procfile line {number} is not `name: command`"
            )));
        };
        let (name, command) = (name.trim(), command.trim());
        check_type(name).map_err(|e| Refused(format!("Procfile line {number}: {e}")))?;
        check_command(name, command)
            .map_err(|e| Refused(format!("Procfile line {number}: {e}")))?;
        if processes
            .insert(name.to_string(), command.to_string())
            .is_some()
        {
            return Err(Refused(format!(
                "Procfile line {number}: process type {name:?} is declared twice"
            )));
        }
    }
    check(&processes)?;
    Ok(processes)
}

/// The types that run as processes (everything but `release`), `web` always
/// among them (it runs the image's own command when not declared).
pub fn process_types(processes: &BTreeMap<String, String>) -> Vec<String> {
    let mut types = vec![WEB.to_string()];
    types.extend(
        processes
            .keys()
            .filter(|k| *k != WEB && *k != RELEASE)
            .cloned(),
    );
    types
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_herokus_format() {
        let text = "# processes\nweb: ./server --port $PORT\n\nworker:   python worker.py  \nrelease: ./migrate\nclock: sh -c 'a: b'\n";
        let parsed = parse(text).unwrap();
        assert_eq!(parsed["web"], "./server --port $PORT");
        assert_eq!(parsed["worker"], "python worker.py");
        assert_eq!(parsed["release"], "./migrate");
        assert_eq!(parsed["clock"], "sh -c 'a: b'");
        assert_eq!(process_types(&parsed), ["web", "clock", "worker"]);
    }

    #[test]
    fn refuses_what_is_not_a_procfile() {
        assert!(parse("web ./server").unwrap_err().0.contains("line 1"));
        assert!(parse("web: a\nweb: b").unwrap_err().0.contains("twice"));
        assert!(parse("Web: a").is_err());
        assert!(parse("../x: a").is_err());
        assert!(parse("worker:   ").unwrap_err().0.contains("no command"));
        assert!(parse(&"x".repeat(MAX_BYTES + 1)).is_err());
        let many: String = (0..=MAX_TYPES).map(|i| format!("p{i}: run\n")).collect();
        assert!(parse(&many).unwrap_err().0.contains("at most"));
    }

    #[test]
    fn web_is_always_a_type() {
        assert_eq!(process_types(&BTreeMap::new()), ["web"]);
        let only_worker = parse("worker: run").unwrap();
        assert_eq!(process_types(&only_worker), ["web", "worker"]);
    }

    #[test]
    fn type_names_fit_in_container_names() {
        for ok in ["web", "worker", "clock_2", "a-b"] {
            assert!(check_type(ok).is_ok(), "{ok}");
        }
        for bad in ["", "2x", "a b", "a.b", "A", &"a".repeat(31)] {
            assert!(check_type(bad).is_err(), "{bad}");
        }
    }
}
