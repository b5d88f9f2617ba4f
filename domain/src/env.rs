//! Rules for an application's environment variables: key syntax, value size,
//! how many an app may have, and how a value is masked in lists.

use crate::Invalid;

/// The most variables one application may have.
pub const MAX_VARS_PER_APP: i64 = 200;
/// The longest key, in bytes.
pub const MAX_KEY_LEN: usize = 255;
/// The largest value, in bytes (32 KiB).
pub const MAX_VALUE_LEN: usize = 32 * 1024;

/// Checks a key: `[A-Za-z_][A-Za-z0-9_]*`, at most [`MAX_KEY_LEN`] bytes.
pub fn validate_key(key: &str) -> Result<(), Invalid> {
    let mut bytes = key.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
    if !first_ok || !bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(Invalid::new(
            "key",
            "a key starts with a letter or '_' and has only letters, digits and '_'",
        ));
    }
    if key.len() > MAX_KEY_LEN {
        return Err(Invalid::new(
            "key",
            format!("a key is at most {MAX_KEY_LEN} characters"),
        ));
    }
    if RESERVED.contains(&key) {
        return Err(Invalid::new(
            "key",
            format!(
                "{key} is set by the platform (to the application's `port` setting); change that instead"
            ),
        ));
    }
    Ok(())
}

/// Keys the platform sets in every container; a customer cannot set them.
/// (A linked database's variables are different: a customer's variable of
/// the same name wins over them.)
pub const RESERVED: &[&str] = &["PORT"];

/// Checks a value: at most [`MAX_VALUE_LEN`] bytes and no NUL byte (a process
/// environment cannot carry one).
pub fn validate_value(value: &str) -> Result<(), Invalid> {
    if value.len() > MAX_VALUE_LEN {
        return Err(Invalid::new(
            "value",
            format!(
                "a value is at most {MAX_VALUE_LEN} bytes, got {}",
                value.len()
            ),
        ));
    }
    if value.contains('\0') {
        return Err(Invalid::new("value", "a value must not contain a NUL byte"));
    }
    Ok(())
}

/// The masked form shown in lists: never any character of the value.
pub fn mask(value: &str) -> String {
    if value.is_empty() {
        String::new()
    } else {
        "********".to_string()
    }
}

/// The associated data that binds an encrypted value to its row, so a
/// ciphertext copied to another app or key does not decrypt.
pub fn associated_data(application_id: i64, key: &str) -> Vec<u8> {
    format!("paas_environment_vars:{application_id}:{key}").into_bytes()
}

/// How a release made by a configuration change describes it, as Heroku
/// does: "Set GREETING", "Remove GREETING", "Set A, B; remove C".
pub fn change_description(set: &[&str], removed: &[&str]) -> String {
    match (set.is_empty(), removed.is_empty()) {
        (false, true) => format!("Set {}", set.join(", ")),
        (true, false) => format!("Remove {}", removed.join(", ")),
        (false, false) => format!("Set {}; remove {}", set.join(", "), removed.join(", ")),
        (true, true) => "Configuration unchanged".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        for ok in ["A", "_", "DATABASE_URL", "a1_b2", &"K".repeat(255)] {
            assert!(validate_key(ok).is_ok(), "{ok}");
        }
        for bad in ["", "1A", "A-B", "A B", "É", &"K".repeat(256)] {
            assert!(validate_key(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn values() {
        assert!(validate_value("").is_ok());
        assert!(validate_value(&"x".repeat(MAX_VALUE_LEN)).is_ok());
        assert!(validate_value(&"x".repeat(MAX_VALUE_LEN + 1)).is_err());
        assert!(validate_value("a\0b").is_err());
    }

    #[test]
    fn masking_hides_everything() {
        assert_eq!(mask("s3cret"), "********");
        assert!(!mask("abcdefghijkl").contains('a'));
        assert_eq!(mask(""), "");
    }

    #[test]
    fn a_change_describes_itself_as_heroku_does() {
        assert_eq!(change_description(&["GREETING"], &[]), "Set GREETING");
        assert_eq!(change_description(&[], &["GREETING"]), "Remove GREETING");
        assert_eq!(
            change_description(&["A", "B"], &["C"]),
            "Set A, B; remove C"
        );
    }

    #[test]
    fn the_platforms_own_keys_are_refused() {
        let refused = validate_key("PORT").unwrap_err();
        assert!(
            refused.message.contains("set by the platform"),
            "{}",
            refused.message
        );
        assert!(validate_key("PORT_NUMBER").is_ok());
    }
}
