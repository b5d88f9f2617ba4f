//! HMAC-SHA256 signatures of webhook bodies, GitHub's way: the header
//! `X-Hub-Signature-256: sha256=<hex of HMAC(secret, body)>`, compared in
//! constant time.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The header value signing `body` with `secret`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret).unwrap_or_else(|_| {
        // HMAC takes keys of any length; this cannot fail.
        unreachable!("HMAC accepts every key length")
    });
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Whether `header` is `body`'s signature with `secret`.
pub fn verify(secret: &[u8], body: &[u8], header: &str) -> bool {
    let Some(hex_part) = header.trim().strip_prefix("sha256=") else {
        return false;
    };
    let Ok(expected) = hex::decode(hex_part) else {
        return false;
    };
    let Ok(mut mac) = HmacSha256::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_round_trip_and_refuse_tampering() {
        let header = sign(b"s3cret", b"{\"ref\":\"refs/heads/main\"}");
        assert!(header.starts_with("sha256=") && header.len() == 7 + 64);
        assert!(verify(b"s3cret", b"{\"ref\":\"refs/heads/main\"}", &header));
        assert!(!verify(b"other", b"{\"ref\":\"refs/heads/main\"}", &header));
        assert!(!verify(
            b"s3cret",
            b"{\"ref\":\"refs/heads/evil\"}",
            &header
        ));
        assert!(!verify(b"s3cret", b"{}", "sha1=abcd"));
        assert!(!verify(b"s3cret", b"{}", "sha256=not-hex"));
    }

    #[test]
    fn githubs_documented_example() {
        // docs.github.com, "Validating webhook deliveries": the secret
        // "It's a Secret to Everybody" and the payload "Hello, World!".
        let expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert_eq!(
            sign(b"It's a Secret to Everybody", b"Hello, World!"),
            expected
        );
        assert!(verify(
            b"It's a Secret to Everybody",
            b"Hello, World!",
            expected
        ));
    }

    #[test]
    fn known_answer() {
        // RFC 4231 test case 2.
        let mac = sign(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            mac,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
