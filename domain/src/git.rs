//! Rules for the Git sources an application deploys from: repository URLs,
//! branch names and commit hashes. Everything here ends up on a `git` command
//! line on a node, so it is strict: no option injection, no control characters.

use crate::Invalid;

/// Which URL forms are accepted. `file://` and plain `http://` are for
/// local use and tests only.
#[derive(Debug, Clone, Copy, Default)]
pub struct GitUrlPolicy {
    pub allow_file: bool,
    pub allow_plain_http: bool,
}

/// Checks a repository URL: `https://host/path`, `ssh://[user@]host[:port]/path`,
/// `user@host:path`, and `file:///path` or `http://host/path` when the policy
/// allows them.
pub fn validate_repo_url(url: &str, policy: GitUrlPolicy) -> Result<(), Invalid> {
    let field = "git_repo_url";
    let invalid = |why: &str| Invalid::new(field, format!("not a usable git URL: {why}"));
    if url.is_empty() || url.len() > 2048 {
        return Err(invalid("1 to 2048 characters"));
    }
    if url.starts_with('-') {
        return Err(invalid("must not start with '-'"));
    }
    if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(invalid("must not contain spaces or control characters"));
    }
    let secure = url.strip_prefix("https://");
    let plain = url
        .strip_prefix("http://")
        .filter(|_| policy.allow_plain_http);
    if let Some(rest) = secure.or(plain) {
        let authority = rest.split('/').next().unwrap_or("");
        if authority.contains('@') {
            return Err(invalid(
                "credentials do not belong in the URL; set git_oauth_token instead",
            ));
        }
        return check_host_and_path(rest, '/').map_err(&invalid);
    }
    if let Some(rest) = url.strip_prefix("ssh://") {
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let host_and_port = match authority.split_once('@') {
            Some((user, host)) if valid_user(user) => host,
            Some(_) => return Err(invalid("bad user name before '@'")),
            None => authority,
        };
        return check_host_and_path(&format!("{host_and_port}/{path}"), '/').map_err(&invalid);
    }
    if let Some(path) = url.strip_prefix("file://") {
        if !policy.allow_file {
            return Err(invalid("file:// URLs are not allowed on this platform"));
        }
        if !path.starts_with('/') || path.len() < 2 {
            return Err(invalid("file:// URLs need an absolute path"));
        }
        return Ok(());
    }
    if url.contains("://") {
        return Err(invalid("use https://, ssh:// or user@host:path"));
    }
    // scp-like form: user@host:path
    let Some((user, rest)) = url.split_once('@') else {
        return Err(invalid("use https://, ssh:// or user@host:path"));
    };
    if user.is_empty()
        || !user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        return Err(invalid("bad user name before '@'"));
    }
    check_host_and_path(rest, ':').map_err(invalid)
}

/// A user name in an ssh URL: letters, digits, `.`, `_`, `-`, not starting with `-`.
fn valid_user(user: &str) -> bool {
    !user.is_empty()
        && !user.starts_with('-')
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// `host[:port]<sep>path` with a non-empty path.
fn check_host_and_path(rest: &str, separator: char) -> Result<(), &'static str> {
    let (authority, path) = rest
        .split_once(separator)
        .ok_or("missing repository path")?;
    if path.is_empty() || path == "/" {
        return Err("missing repository path");
    }
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if separator == '/' => {
            port.parse::<u16>().map_err(|_| "bad port")?;
            host
        }
        _ => authority,
    };
    let ok = !host.is_empty()
        && !host.starts_with('-')
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-[]:".contains(&b));
    if ok { Ok(()) } else { Err("bad host name") }
}

/// Checks a branch name by the rules of `git check-ref-format --branch`.
pub fn validate_branch(branch: &str) -> Result<(), Invalid> {
    let invalid = |why: &str| Invalid::new("git_branch", format!("not a valid branch name: {why}"));
    if branch.is_empty() || branch.len() > 255 {
        return Err(invalid("1 to 255 characters"));
    }
    if branch.starts_with('-') || branch.starts_with('/') || branch.ends_with('/') {
        return Err(invalid("must not start with '-' or '/', or end with '/'"));
    }
    if branch.ends_with('.') || branch.ends_with(".lock") || branch == "@" {
        return Err(invalid("must not end with '.' or '.lock', or be '@'"));
    }
    if branch.contains("..")
        || branch.contains("@{")
        || branch.contains("//")
        || branch.contains("/.")
    {
        return Err(invalid("must not contain '..', '@{', '//' or '/.'"));
    }
    if branch.starts_with('.') {
        return Err(invalid("must not start with '.'"));
    }
    if branch
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || "~^:?*[\\".contains(c))
    {
        return Err(invalid(
            "must not contain spaces, control characters or any of ~^:?*[\\",
        ));
    }
    Ok(())
}

/// Checks a full or abbreviated commit hash (7 to 40 hex digits), lowercased.
pub fn normalize_commit(field: &str, sha: &str) -> Result<String, Invalid> {
    let sha = sha.trim().to_ascii_lowercase();
    if (7..=40).contains(&sha.len()) && sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(sha)
    } else {
        Err(Invalid::new(
            field,
            "a commit is 7 to 40 hexadecimal digits",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRICT: GitUrlPolicy = GitUrlPolicy {
        allow_file: false,
        allow_plain_http: false,
    };
    const LOCAL: GitUrlPolicy = GitUrlPolicy {
        allow_file: true,
        allow_plain_http: true,
    };

    #[test]
    fn accepted_urls() {
        for url in [
            "https://github.com/acme/shop.git",
            "https://git.example.com:8443/acme/shop",
            "ssh://git@github.com/acme/shop.git",
            "ssh://git@git.example.com:2222/acme/shop.git",
            "ssh://git.example.com/team/a@b.git",
            "git@github.com:acme/shop.git",
        ] {
            assert!(validate_repo_url(url, STRICT).is_ok(), "{url}");
        }
        assert!(validate_repo_url("file:///srv/git/shop", LOCAL).is_ok());
        assert!(validate_repo_url("http://127.0.0.1:9418/shop.git", LOCAL).is_ok());
        assert!(validate_repo_url("http://u:p@127.0.0.1/shop.git", LOCAL).is_err());
    }

    #[test]
    fn refused_urls() {
        for url in [
            "",
            "http://github.com/acme/shop.git",
            "ftp://x/y",
            "-uhttps://evil",
            "https://github.com",
            "https://token@github.com/acme/shop.git",
            "https://user:secret@github.com/acme/shop.git",
            "https://github.com/",
            "https://exa mple.com/x",
            "git@github.com",
            "github.com:acme/shop",
            "https://host:notaport/x",
            "file:///srv/git/shop",
            "ext::sh -c touch% /tmp/pwned",
            "ssh://-oProxyCommand=touch@host/x",
            "ssh://host",
            "-oProxyCommand=x@host:path",
        ] {
            assert!(validate_repo_url(url, STRICT).is_err(), "{url}");
        }
        assert!(validate_repo_url("file://relative", LOCAL).is_err());
    }

    #[test]
    fn branches() {
        for ok in ["main", "feature/login", "release-1.2", "v2_x"] {
            assert!(validate_branch(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "-f", "a..b", "a b", "x.lock", "a@{1}", "/x", "x/", "a~1", "a:b", ".hidden", "a//b",
        ] {
            assert!(validate_branch(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn commits() {
        assert_eq!(normalize_commit("c", "ABCDEF1").unwrap(), "abcdef1");
        assert!(normalize_commit("c", "abc").is_err());
        assert!(normalize_commit("c", "xyz1234").is_err());
    }
}
