//! Passwords (argon2id) and bearer secrets (random tokens stored as SHA-256 digests).

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::Invalid;

/// Shortest and longest password accepted.
pub const PASSWORD_LEN: std::ops::RangeInclusive<usize> = 8..=128;

/// Prefix of long-lived customer API tokens, so they are told apart from JWTs.
pub const API_TOKEN_PREFIX: &str = "spt_";
/// Prefix of one-time node registration tokens.
pub const REGISTRATION_TOKEN_PREFIX: &str = "spr_";
/// Prefix of per-node agent credentials.
pub const NODE_CREDENTIAL_PREFIX: &str = "spn_";

/// Checks a new password's length.
pub fn validate_password(password: &str) -> Result<(), Invalid> {
    let len = password.chars().count();
    if PASSWORD_LEN.contains(&len) {
        Ok(())
    } else {
        Err(Invalid::new(
            "password",
            format!(
                "a password has {} to {} characters",
                PASSWORD_LEN.start(),
                PASSWORD_LEN.end()
            ),
        ))
    }
}

/// Hashes a password with argon2id and a random salt (PHC string format).
pub fn hash_password(password: &str) -> String {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .unwrap_or_else(|_| unreachable!("argon2 accepts any password of validated length"))
}

/// Checks a password against a PHC hash; a malformed hash never verifies.
pub fn verify_password(password: &str, phc_hash: &str) -> bool {
    PasswordHash::new(phc_hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A hash of a fixed dummy password, so that a login for an unknown e-mail costs
/// the same time as one with a wrong password.
pub fn dummy_password_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| hash_password("dummy-password-for-timing"))
}

/// A fresh bearer secret: `prefix` followed by 32 random bytes in hex.
pub fn generate_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{prefix}{}", hex::encode(bytes))
}

/// The credential that replaces node credential `presented` when it is
/// rotated: `spn_` and the hex of HMAC-SHA256(`secret`, `presented`). Derived,
/// not drawn, so that a rotation delivered twice (an answer lost on the way,
/// a proxy's retry) answers the same new credential both times, and nothing
/// but its digest is ever stored. Unguessable without `secret`.
pub fn rotated_credential(secret: &[u8], presented: &str) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<Sha256>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC accepts every key length"));
    mac.update(b"skypanel node credential rotation\0");
    mac.update(presented.as_bytes());
    format!(
        "{NODE_CREDENTIAL_PREFIX}{}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// The stored form of a bearer secret: its SHA-256 in hex. The secrets carry
/// 256 random bits, so a fast hash is enough (no dictionary to guess from).
pub fn token_digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A managed database's generated user name: `u` and 11 random hex digits.
pub fn generate_database_user() -> String {
    let mut bytes = [0u8; 6];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("u{}", &hex::encode(bytes)[..11])
}

/// A managed database's generated password: 32 hex digits (128 random bits),
/// safe in a URL without escaping.
pub fn generate_database_password() -> String {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords() {
        let hash = hash_password("correct horse");
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("wrong horse", &hash));
        assert!(!verify_password("correct horse", "not-a-hash"));
        assert!(validate_password("short").is_err());
        assert!(validate_password("long enough").is_ok());
    }

    #[test]
    fn tokens() {
        let a = generate_token(API_TOKEN_PREFIX);
        let b = generate_token(API_TOKEN_PREFIX);
        assert!(a.starts_with("spt_") && a.len() == 4 + 64);
        assert_ne!(a, b);
        assert_eq!(token_digest(&a), token_digest(&a));
        assert_ne!(token_digest(&a), token_digest(&b));
        assert!(!token_digest(&a).contains(&a[4..]));
    }

    #[test]
    fn a_rotated_credential_is_the_same_for_the_same_credential_and_secret_only() {
        let once = rotated_credential(b"secret", "spn_a");
        assert!(once.starts_with(NODE_CREDENTIAL_PREFIX) && once.len() == 4 + 64);
        assert_eq!(once, rotated_credential(b"secret", "spn_a"));
        assert_ne!(once, rotated_credential(b"secret", "spn_b"));
        assert_ne!(once, rotated_credential(b"other", "spn_a"));
    }
}
