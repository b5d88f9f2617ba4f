//! Sealing of secrets at rest with AES-256-GCM. A sealed value is
//! `nonce (12 bytes) || ciphertext+tag`, bound to its row by associated data,
//! so a ciphertext moved to another row, or altered, does not open. A key may
//! carry earlier keys that still open (never seal) values, so that the key
//! can change while the platform runs: `skypanel secrets rotate` then seals
//! every value again under the current key.

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

/// The platform's AES-256 key, and the earlier keys that still open values
/// sealed before a rotation. `Debug` never shows them.
#[derive(Clone)]
pub struct SecretKey {
    current: Key<Aes256Gcm>,
    previous: Vec<Key<Aes256Gcm>>,
}

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
        Ok(Self {
            current: *Key::<Aes256Gcm>::from_slice(&bytes),
            previous: Vec::new(),
        })
    }

    /// This key, also opening values sealed under `earlier` keys.
    pub fn with_previous(mut self, earlier: Vec<SecretKey>) -> Self {
        self.previous = earlier.into_iter().map(|k| k.current).collect();
        self
    }

    /// A key for another purpose (`purpose` names it), derived from the
    /// current key: HMAC-SHA256(key, purpose). Whoever has the platform's
    /// key has it; it opens nothing sealed.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        use hmac::{Hmac, Mac};
        let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(self.current.as_slice())
            .unwrap_or_else(|_| unreachable!("HMAC accepts every key length"));
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// How many earlier keys it still opens values with.
    pub fn previous_count(&self) -> usize {
        self.previous.len()
    }

    /// Encrypts `plaintext` bound to `associated_data` under a fresh random nonce.
    pub fn seal(&self, plaintext: &[u8], associated_data: &[u8]) -> Vec<u8> {
        let cipher = Aes256Gcm::new(&self.current);
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

    /// Decrypts a value made by [`SecretKey::seal`] with the same associated
    /// data, under the current key or an earlier one.
    pub fn open(&self, sealed: &[u8], associated_data: &[u8]) -> Result<Vec<u8>, SealError> {
        self.open_with(sealed, associated_data)
            .map(|(plain, _)| plain)
    }

    /// Opens the value and says whether it was sealed under an earlier key.
    fn open_with(
        &self,
        sealed: &[u8],
        associated_data: &[u8],
    ) -> Result<(Vec<u8>, bool), SealError> {
        if sealed.len() < NONCE_LEN + 16 {
            return Err(SealError::Truncated);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let attempt = |key: &Key<Aes256Gcm>| {
            let payload = Payload {
                msg: ciphertext,
                aad: associated_data,
            };
            Aes256Gcm::new(key)
                .decrypt(Nonce::from_slice(nonce), payload)
                .ok()
        };
        if let Some(plain) = attempt(&self.current) {
            return Ok((plain, false));
        }
        self.previous
            .iter()
            .find_map(attempt)
            .map(|plain| (plain, true))
            .ok_or(SealError::Forged)
    }

    /// A value sealed under an earlier key, sealed again under the current
    /// one with the same associated data; `None` when it is current already.
    pub fn reseal(
        &self,
        sealed: &[u8],
        associated_data: &[u8],
    ) -> Result<Option<Vec<u8>>, SealError> {
        match self.open_with(sealed, associated_data)? {
            (_, false) => Ok(None),
            (plain, true) => Ok(Some(self.seal(&plain, associated_data))),
        }
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
    fn an_earlier_key_opens_until_the_value_is_sealed_again() {
        let old = key("ab");
        let sealed = old.seal_str("hunter2", b"row:1");
        let ring = key("cd").with_previous(vec![old.clone()]);
        assert_eq!(ring.open_str(&sealed, b"row:1").unwrap(), "hunter2");
        // Associated data still binds under an earlier key.
        assert_eq!(ring.open(&sealed, b"row:2"), Err(SealError::Forged));
        let again = ring.reseal(&sealed, b"row:1").unwrap().unwrap();
        assert_eq!(key("cd").open_str(&again, b"row:1").unwrap(), "hunter2");
        assert_eq!(old.open(&again, b"row:1"), Err(SealError::Forged));
        assert_eq!(ring.reseal(&again, b"row:1").unwrap(), None);
        // A value no key opens is refused, not sealed again.
        let foreign = key("ef").seal(b"x", b"row:1");
        assert_eq!(ring.reseal(&foreign, b"row:1"), Err(SealError::Forged));
        let mut tampered = sealed.clone();
        tampered[NONCE_LEN] ^= 1;
        assert_eq!(ring.reseal(&tampered, b"row:1"), Err(SealError::Forged));
    }

    #[test]
    fn key_format() {
        assert!(SecretKey::from_hex("ab").is_err());
        assert!(SecretKey::from_hex(&"zz".repeat(32)).is_err());
        assert_eq!(format!("{:?}", key("ab")), "SecretKey(..)");
    }
}
