//! Rules for names the platform turns into URLs, hostnames and labels:
//! application slugs, regions, hostnames, e-mail addresses and image references.

use crate::Invalid;

/// Slugs that would shadow the platform's own hostnames.
const RESERVED_SLUGS: &[&str] = &[
    "www", "api", "admin", "panel", "app", "apps", "mail", "smtp", "ns1", "ns2", "status", "docs",
    "skypanel",
];

/// Turns an application name into its slug: lowercase letters, digits and single
/// hyphens, 3 to 63 characters, not starting or ending with a hyphen.
///
/// Letters are lowercased, every run of other characters becomes one hyphen.
pub fn slug_from_app_name(name: &str) -> Result<String, Invalid> {
    let name = name.trim();
    if name.is_empty() {
        return Err(Invalid::new("name", "name must not be empty"));
    }
    if name.chars().count() > 100 {
        return Err(Invalid::new("name", "name must be at most 100 characters"));
    }
    let mut slug = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let slug = slug.trim_matches('-').to_string();
    validate_slug(&slug).map_err(|e| Invalid::new("name", e.message))?;
    Ok(slug)
}

/// Checks a slug as produced by [`slug_from_app_name`].
pub fn validate_slug(slug: &str) -> Result<(), Invalid> {
    let len = slug.len();
    if !(3..=63).contains(&len) {
        return Err(Invalid::new(
            "slug",
            format!(
                "the name must give a slug of 3 to 63 letters, digits or hyphens; \"{slug}\" has {len}"
            ),
        ));
    }
    let ok_chars = slug
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !ok_chars || slug.starts_with('-') || slug.ends_with('-') || slug.contains("--") {
        return Err(Invalid::new(
            "slug",
            format!(
                "\"{slug}\" is not a valid slug (lowercase letters, digits and single hyphens)"
            ),
        ));
    }
    if RESERVED_SLUGS.contains(&slug) {
        return Err(Invalid::new(
            "slug",
            format!("\"{slug}\" is reserved by the platform"),
        ));
    }
    Ok(())
}

/// A region name: lowercase letters, digits and hyphens, 1 to 50 characters (`us-east`, `local`).
pub fn validate_region(field: &str, region: &str) -> Result<(), Invalid> {
    let ok = !region.is_empty()
        && region.len() <= 50
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !region.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(Invalid::new(
            field,
            "region must be 1 to 50 lowercase letters, digits or hyphens",
        ))
    }
}

/// A DNS hostname (`shop.example.com`, `node-1`): labels of letters, digits and
/// hyphens up to 63 characters, 253 in all. Returned lowercased.
pub fn normalize_hostname(field: &str, host: &str) -> Result<String, Invalid> {
    let host = host.trim().trim_end_matches('.').to_ascii_lowercase();
    let bad = || Invalid::new(field, format!("\"{host}\" is not a valid hostname"));
    if host.is_empty() || host.len() > 253 {
        return Err(bad());
    }
    for label in host.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !ok {
            return Err(bad());
        }
    }
    // No top-level domain is numeric: this is an IP address, and a name
    // that captured it would take every request reaching a node by address.
    if host
        .rsplit('.')
        .next()
        .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(Invalid::new(
            field,
            format!("\"{host}\" is an IP address, not a domain name"),
        ));
    }
    Ok(host)
}

/// A node's address as the control plane reaches it: a hostname or an IP address.
pub fn normalize_host_address(host: &str) -> Result<String, Invalid> {
    let trimmed = host.trim();
    if trimmed.parse::<std::net::IpAddr>().is_ok() {
        return Ok(trimmed.to_string());
    }
    normalize_hostname("host_address", trimmed)
}

/// An e-mail address, lowercased. Deliberately loose: one `@`, a non-empty local
/// part, a domain with valid labels, 254 characters at most.
pub fn normalize_email(email: &str) -> Result<String, Invalid> {
    let email = email.trim().to_lowercase();
    let invalid = || Invalid::new("email", "not a valid e-mail address");
    if email.len() > 254 || email.chars().any(char::is_whitespace) {
        return Err(invalid());
    }
    let (local, domain) = email.split_once('@').ok_or_else(invalid)?;
    if local.is_empty() || local.len() > 64 || domain.contains('@') {
        return Err(invalid());
    }
    normalize_hostname("email", domain).map_err(|_| invalid())?;
    Ok(email)
}

/// A Docker image reference: `[registry[:port]/]path[:tag][@sha256:digest]`.
pub fn validate_image_reference(field: &str, image: &str) -> Result<(), Invalid> {
    let invalid = |why: &str| {
        Invalid::new(
            field,
            format!("\"{image}\" is not a valid image reference: {why}"),
        )
    };
    if image.is_empty() || image.len() > 255 {
        return Err(invalid("1 to 255 characters"));
    }
    let (rest, digest) = match image.split_once('@') {
        Some((rest, digest)) => (rest, Some(digest)),
        None => (image, None),
    };
    if let Some(digest) = digest {
        let hex = digest
            .strip_prefix("sha256:")
            .ok_or_else(|| invalid("digest must be sha256:<hex>"))?;
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid("digest must be sha256 and 64 hex digits"));
        }
    }
    // A tag follows the last colon that comes after the last slash.
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (path, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    };
    if let Some(tag) = tag {
        let ok = !tag.is_empty()
            && tag.len() <= 128
            && !tag.starts_with(['.', '-'])
            && tag
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !ok {
            return Err(invalid("bad tag"));
        }
    }
    let mut components = path.split('/').peekable();
    let mut first = true;
    while let Some(component) = components.next() {
        let is_registry = first
            && components.peek().is_some()
            && (component.contains(['.', ':']) || component == "localhost");
        first = false;
        if is_registry {
            let ok = !component.is_empty()
                && component
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:".contains(&b));
            if !ok {
                return Err(invalid("bad registry host"));
            }
            continue;
        }
        let ok = !component.is_empty()
            && component
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
            && component.as_bytes()[0].is_ascii_alphanumeric()
            && component.as_bytes()[component.len() - 1].is_ascii_alphanumeric();
        if !ok {
            return Err(invalid(
                "path components are lowercase letters, digits and separators",
            ));
        }
    }
    Ok(())
}

/// An absolute HTTP path such as `/healthz`: starts with `/`, at most 255
/// printable ASCII characters, no spaces.
pub fn validate_http_path(field: &str, path: &str) -> Result<(), Invalid> {
    let ok =
        path.starts_with('/') && path.len() <= 255 && path.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(Invalid::new(
            field,
            "a path starts with '/' and has at most 255 printable characters without spaces",
        ))
    }
}

/// A display name or label: trimmed, 1 to `max` characters, no control characters.
pub fn clean_text(field: &str, value: &str, max: usize) -> Result<String, Invalid> {
    let value = value.trim();
    if value.is_empty() {
        return Err(Invalid::new(field, format!("{field} must not be empty")));
    }
    if value.chars().count() > max {
        return Err(Invalid::new(
            field,
            format!("{field} must be at most {max} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(Invalid::new(
            field,
            format!("{field} must not contain control characters"),
        ));
    }
    Ok(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_from_names() {
        assert_eq!(slug_from_app_name("My Shop").unwrap(), "my-shop");
        assert_eq!(
            slug_from_app_name("  api--v2__test ").unwrap(),
            "api-v2-test"
        );
        assert_eq!(slug_from_app_name("Ünïcode app").unwrap(), "n-code-app");
        assert!(slug_from_app_name("ab").is_err());
        assert!(slug_from_app_name("--").is_err());
        assert!(slug_from_app_name(&"a".repeat(64)).is_err());
        assert_eq!(slug_from_app_name(&"a".repeat(63)).unwrap().len(), 63);
        assert!(slug_from_app_name("www").is_err());
        assert_eq!(
            slug_from_app_name("a!").unwrap_err().field.as_deref(),
            Some("name")
        );
    }

    #[test]
    fn hostnames() {
        assert_eq!(
            normalize_hostname("h", "Shop.Example.COM.").unwrap(),
            "shop.example.com"
        );
        assert!(normalize_hostname("h", "-bad.example.com").is_err());
        assert!(normalize_hostname("h", "a..b").is_err());
        assert!(normalize_hostname("h", "under_score.com").is_err());
        let ip = normalize_hostname("h", "10.0.0.1").unwrap_err();
        assert!(ip.message.contains("is an IP address"), "{}", ip.message);
        assert!(normalize_hostname("h", "[::1]").is_err());
        assert!(normalize_hostname("h", "1password.com").is_ok());
        assert!(normalize_host_address("10.0.0.5").is_ok());
        assert!(normalize_host_address("::1").is_ok());
    }

    #[test]
    fn emails() {
        assert_eq!(
            normalize_email(" Alice@Example.com ").unwrap(),
            "alice@example.com"
        );
        assert!(normalize_email("no-at-sign").is_err());
        assert!(normalize_email("a@b@c").is_err());
        assert!(normalize_email("@example.com").is_err());
        assert!(normalize_email("a b@example.com").is_err());
    }

    #[test]
    fn image_references() {
        for ok in [
            "nginx",
            "node:20-slim",
            "library/postgres:16",
            "registry.example.com:5000/team/app:v1.2",
            "localhost/app",
            "skypanel-test/busybox",
            &format!("busybox@sha256:{}", "a".repeat(64)),
        ] {
            assert!(validate_image_reference("image", ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "UPPER/case",
            "app:",
            "app:-x",
            "a b",
            "app@md5:00",
            "-app",
            "app//x",
        ] {
            assert!(validate_image_reference("image", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn http_paths() {
        assert!(validate_http_path("p", "/healthz").is_ok());
        assert!(validate_http_path("p", "/a?b=c").is_ok());
        for bad in ["healthz", "/a b", "", "/\u{e9}"] {
            assert!(validate_http_path("p", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn regions_and_text() {
        assert!(validate_region("region", "us-east-1").is_ok());
        assert!(validate_region("region", "US").is_err());
        assert!(validate_region("region", "").is_err());
        assert_eq!(clean_text("name", "  Basic ", 10).unwrap(), "Basic");
        assert!(clean_text("name", "a\nb", 10).is_err());
        assert!(clean_text("name", "   ", 10).is_err());
    }
}
