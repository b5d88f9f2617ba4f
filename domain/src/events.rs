//! Customer-facing events: the webhook event each kind of notice is, and
//! which addresses a webhook may be delivered to (none of the platform's
//! own: loopback, private, link-local and the like, unless the operator
//! allows them).

use std::net::IpAddr;

/// Every event a webhook can ask for.
pub const EVENTS: &[&str] = &[
    "build.succeeded",
    "build.failed",
    "app.crashed",
    "app.moved",
    "app.unplaced",
    "app.no_room",
    "release.failed",
    "app.github_disconnected",
    "balance.low",
    "account.suspended",
    "account.resumed",
    "ssl.failed",
    "backup.failed",
    "restore.failed",
    "database.stopped",
    "database.resized",
    "database.failed",
    "database.moved",
    "database.move_failed",
];

/// The webhook event of a notice's kind.
pub fn event_of(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "build_succeeded" => "build.succeeded",
        "build_failed" => "build.failed",
        "app_crashed" => "app.crashed",
        "app_moved" => "app.moved",
        "app_unplaced" => "app.unplaced",
        "no_room" => "app.no_room",
        "release_failed" => "release.failed",
        "github_disconnected" => "app.github_disconnected",
        "balance_negative" => "balance.low",
        "suspended" => "account.suspended",
        "resumed" => "account.resumed",
        "ssl_failed" | "ssl_renewal_failed" => "ssl.failed",
        "backup_failed" => "backup.failed",
        "restore_failed" => "restore.failed",
        "database_stopped" => "database.stopped",
        "database_resized" => "database.resized",
        "database_failed" => "database.failed",
        "database_moved" => "database.moved",
        "database_move_failed" => "database.move_failed",
        _ => return None,
    })
}

/// Whether an address belongs to the public internet: not loopback,
/// private, link-local, shared (CGNAT), unspecified, multicast, documentation
/// or unique-local. A webhook aimed elsewhere could reach the platform's own
/// services (its PostgreSQL, Redis, the nodes' Docker networks).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (b == 18 || b == 19))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if v6.is_loopback() || v6.is_unspecified() {
                return false;
            }
            // Mapped (::ffff:a.b.c.d) and compatible (::a.b.c.d) IPv4.
            if let Some(v4) = v6.to_ipv4() {
                return is_public(IpAddr::V4(v4));
            }
            let s = v6.segments();
            !(v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link-local
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || (s[0] == 0x0064 && s[1] == 0xff9b) // NAT64: an IPv4 address behind it
                || s[0] == 0x2002 // 6to4: the same
                || (s[0] == 0x2001 && s[1] == 0)) // Teredo: the same
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_has_a_notice_kind_and_back() {
        for kind in [
            "build_succeeded",
            "build_failed",
            "app_crashed",
            "release_failed",
            "github_disconnected",
            "balance_negative",
            "suspended",
            "resumed",
            "ssl_failed",
            "backup_failed",
            "restore_failed",
            "database_stopped",
            "database_resized",
            "database_failed",
            "database_moved",
            "database_move_failed",
        ] {
            assert!(EVENTS.contains(&event_of(kind).unwrap()), "{kind}");
        }
        assert_eq!(event_of("ssl_renewal_failed"), Some("ssl.failed"));
        assert_eq!(event_of("something_else"), None);
    }

    #[test]
    fn only_public_addresses_are_public() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::10.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:a9fe:a9fe::1",
            "2001:0:4136:e378::1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }
}
