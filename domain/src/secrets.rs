//! Sealing of secrets at rest with AES-256-GCM. A sealed value is
//! `nonce (12 bytes) || ciphertext+tag`, bound to its row by associated data,
//! so a ciphertext moved to another row, or altered, does not open.

use aes_gcm::aead::{Aead, KeyInit, OsRng, Payload};
use aes_gcm::{AeadCore, Aes256Gcm, Key, Nonce};

use crate::Invalid;

const NONCE_LEN: usize = 12;

/// Why a sealed value could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("sealed value is too short")]
    Truncated,
    #[error("sealed value does not open with this key and associated data")]
    Forged,
    #[error("opened value is not UTF-8")]
    NotText,
}

/// The platform's AES-256 key. `Debug` never shows it.
#[derive(Clone)]
pub struct SecretKey(Key<Aes256Gcm>);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

impl SecretKey {
    /// Parses 64 hexadecimal characters (32 bytes).
    pub fn from_hex(hex_key: &str) -> Result<Self, Invalid> {
        let bytes = hex::decode(hex_key.trim())
            .ok()
            .filter(|b| b.len() == 32)
            .ok_or_else(|| Invalid::general("must be 64 hexadecimal characters (32 bytes)"))?;
        Ok(Self(*Key::<Aes256Gcm>::from_slice(&bytes)))
    }

    /// Encrypts `plaintext` bound to `associated_data` under a fresh random nonce.
    pub fn seal(&self, plaintext: &[u8], associated_data: &[u8]) -> Vec<u8> {
        let cipher = Aes256Gcm::new(&self.0);
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let payload = Payload {
            msg: plaintext,
            aad: associated_data,
        };
        // Encryption only fails for inputs beyond 64 GiB, which no caller can send.
        let ciphertext = cipher
            .encrypt(&nonce, payload)
            .unwrap_or_else(|_| unreachable!("AES-GCM input is bounded by the request size"));
        let mut sealed = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        sealed
    }

    /// Decrypts a value made by [`SecretKey::seal`] with the same associated data.
    pub fn open(&self, sealed: &[u8], associated_data: &[u8]) -> Result<Vec<u8>, SealError> {
        if sealed.len() < NONCE_LEN + 16 {
            return Err(SealError::Truncated);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let payload = Payload {
            msg: ciphertext,
            aad: associated_data,
        };
        Aes256Gcm::new(&self.0)
            .decrypt(Nonce::from_slice(nonce), payload)
            .map_err(|_| SealError::Forged)
    }

    /// [`SecretKey::seal`] for text.
    pub fn seal_str(&self, plaintext: &str, associated_data: &[u8]) -> Vec<u8> {
        self.seal(plaintext.as_bytes(), associated_data)
    }

    /// [`SecretKey::open`] for text.
    pub fn open_str(&self, sealed: &[u8], associated_data: &[u8]) -> Result<String, SealError> {
        String::from_utf8(self.open(sealed, associated_data)?).map_err(|_| SealError::NotText)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: &str) -> SecretKey {
        SecretKey::from_hex(&byte.repeat(32)).unwrap()
    }

    #[test]
    fn round_trip() {
        let k = key("ab");
        let sealed = k.seal_str("hunter2", b"row:1");
        assert!(!sealed.windows(7).any(|w| w == b"hunter2"));
        assert_eq!(k.open_str(&sealed, b"row:1").unwrap(), "hunter2");
    }

    #[test]
    fn nonces_differ() {
        let k = key("ab");
        assert_ne!(k.seal(b"same", b"ad"), k.seal(b"same", b"ad"));
    }

    #[test]
    fn tampering_is_refused() {
        let k = key("ab");
        let mut sealed = k.seal(b"value", b"row:1");
        assert_eq!(k.open(&sealed, b"row:2"), Err(SealError::Forged));
        assert_eq!(key("cd").open(&sealed, b"row:1"), Err(SealError::Forged));
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert_eq!(k.open(&sealed, b"row:1"), Err(SealError::Forged));
        assert_eq!(k.open(&sealed[..10], b"row:1"), Err(SealError::Truncated));
    }

    #[test]
    fn key_format() {
        assert!(SecretKey::from_hex("ab").is_err());
        assert!(SecretKey::from_hex(&"zz".repeat(32)).is_err());
        assert_eq!(format!("{:?}", key("ab")), "SecretKey(..)");
    }
}
