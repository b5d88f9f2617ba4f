//! Rules of automatic HTTPS that need no I/O: what an ACME server's problem
//! means to the customer who owns the name, and when the next attempt runs.

use std::time::Duration;

/// How many attempts one certificate request gets.
pub const ATTEMPTS: i32 = 3;

/// The wait before attempt `next` (2, 3, …): `base`, then twice as long each time.
pub fn backoff(base: Duration, next: i32) -> Duration {
    let doublings = u32::try_from(next.saturating_sub(2)).unwrap_or(0).min(16);
    base.saturating_mul(1 << doublings)
}

/// Why an attempt failed, in words the domain's owner can act on.
/// `problem_type` is the ACME problem's type (`urn:ietf:params:acme:error:…`)
/// and `detail` the server's own words, quoted at the end.
pub fn explain(hostname: &str, problem_type: Option<&str>, detail: Option<&str>) -> String {
    let kind = problem_type
        .and_then(|t| t.rsplit(':').next())
        .unwrap_or_default();
    let advice = match kind {
        "dns" => format!(
            "DNS for {hostname} does not resolve: add an A record for it pointing at this \
             platform's address (or a CNAME to the application's system domain)"
        ),
        "connection" | "unauthorized" | "incorrectResponse" | "tls" => format!(
            "DNS for {hostname} does not point at this platform: the certificate authority \
             could not fetch its challenge from the application's node. Point an A record at \
             this platform's address (or a CNAME at the application's system domain), wait \
             for DNS to update, then retry"
        ),
        "caa" => format!(
            "a CAA record of {hostname} forbids the certificate authority from issuing for it: \
             allow it in the CAA record, then retry"
        ),
        "rejectedIdentifier" => {
            format!("the certificate authority will not issue a certificate for {hostname}")
        }
        "rateLimited" => format!(
            "the certificate authority's rate limit for {hostname} was reached: retry later"
        ),
        _ => format!("the certificate authority refused a certificate for {hostname}"),
    };
    match detail.map(str::trim).filter(|d| !d.is_empty()) {
        Some(detail) => {
            let detail: String = detail.chars().take(300).collect();
            format!("{advice} (the certificate authority said: {detail})")
        }
        None => advice,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_doubles_from_the_base() {
        let base = Duration::from_secs(60);
        assert_eq!(backoff(base, 2), Duration::from_secs(60));
        assert_eq!(backoff(base, 3), Duration::from_secs(120));
        assert_eq!(backoff(base, 4), Duration::from_secs(240));
        assert_eq!(backoff(base, i32::MAX), Duration::from_secs(60 << 16));
    }

    #[test]
    fn a_failed_validation_tells_the_owner_to_fix_dns() {
        let said = explain(
            "shop.example.com",
            Some("urn:ietf:params:acme:error:connection"),
            Some("Connection refused"),
        );
        assert!(
            said.starts_with("DNS for shop.example.com does not point at this platform"),
            "{said}"
        );
        assert!(said.ends_with("(the certificate authority said: Connection refused)"));
        let said = explain(
            "a.example",
            Some("urn:ietf:params:acme:error:rateLimited"),
            None,
        );
        assert!(said.contains("rate limit") && !said.contains("said"));
        let said = explain("a.example", None, Some(&"x".repeat(1000)));
        assert!(said.len() < 500);
    }
}
