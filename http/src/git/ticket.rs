//! A build's read ticket: `spg_<app id>_<expiry>_<signature>`, an HMAC of
//! the application and the expiry under the platform's signing secret. It
//! lets a node fetch one application's repository (never push) until it
//! expires; nothing is stored, so any replica of the control plane accepts it.

use chrono::{DateTime, Utc};
use skypanel_domain::signatures;

/// What every ticket starts with.
pub const PREFIX: &str = "spg_";

fn signed_text(app_id: i64, expires: i64) -> String {
    format!("git-read:{app_id}:{expires}")
}

/// A ticket for application `app_id` valid until `expires`.
pub fn mint(key: &[u8], app_id: i64, expires: DateTime<Utc>) -> String {
    let expires = expires.timestamp();
    let signature = signatures::sign(key, signed_text(app_id, expires).as_bytes());
    let hex = signature.trim_start_matches("sha256=");
    format!("{PREFIX}{app_id}_{expires}_{hex}")
}

/// Whether `ticket` lets its holder read application `app_id` at `now`.
pub fn verify(key: &[u8], ticket: &str, app_id: i64, now: DateTime<Utc>) -> bool {
    let Some(rest) = ticket.strip_prefix(PREFIX) else {
        return false;
    };
    let mut parts = rest.splitn(3, '_');
    let (Some(app), Some(expires), Some(hex)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let (Ok(app), Ok(expires)) = (app.parse::<i64>(), expires.parse::<i64>()) else {
        return false;
    };
    app == app_id
        && expires > now.timestamp()
        && signatures::verify(
            key,
            signed_text(app, expires).as_bytes(),
            &format!("sha256={hex}"),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticket_reads_its_own_application_until_it_expires() {
        let now = Utc::now();
        let key = b"a-signing-secret";
        let ticket = mint(key, 7, now + chrono::Duration::minutes(5));
        assert!(ticket.starts_with(PREFIX));
        assert!(verify(key, &ticket, 7, now));
        assert!(!verify(key, &ticket, 8, now), "another application");
        assert!(
            !verify(key, &ticket, 7, now + chrono::Duration::minutes(6)),
            "expired"
        );
        assert!(!verify(b"another-secret", &ticket, 7, now), "another key");
        let forged = ticket.replacen("spg_7_", "spg_8_", 1);
        assert!(!verify(key, &forged, 8, now), "the id is signed");
        let later = format!(
            "{PREFIX}7_{}_{}",
            (now + chrono::Duration::days(1)).timestamp(),
            ticket.rsplit('_').next().unwrap_or_default()
        );
        assert!(!verify(key, &later, 7, now), "the expiry is signed");
        assert!(!verify(key, "spg_", 7, now));
        assert!(!verify(key, "spt_abc", 7, now));
    }
}
