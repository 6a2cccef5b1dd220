//! Secrets handling: encryption of personal data at rest, keyed look-up
//! hashes, password hashing and bearer tokens.
//!
//! **Invariant:** plaintext ID numbers and phone numbers exist only in memory
//! during a request; the database holds XChaCha20-Poly1305 ciphertext plus an
//! HMAC-SHA256 for equality look-up. Both keys are derived from the one
//! configured master key with distinct labels, so a leaked look-up hash does
//! not help decrypt. This module knows nothing about persons or HTTP.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::fmt;

type HmacSha256 = Hmac<Sha256>;

/// Errors of this module.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("the PII key must be 32 bytes written as 64 hex characters")]
    BadKey,
    #[error("stored personal data cannot be decrypted with the configured key")]
    Decrypt,
    #[error("password hashing failed")]
    Hash,
}

/// The keys protecting personal data. `Debug` never shows them.
#[derive(Clone)]
pub struct PiiKeys {
    cipher: XChaCha20Poly1305,
    lookup: [u8; 32],
}

impl fmt::Debug for PiiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PiiKeys(***)")
    }
}

impl PiiKeys {
    /// Derive the encryption and look-up keys from a 64-hex-digit master key.
    pub fn from_hex(master: &str) -> Result<PiiKeys, CryptoError> {
        let bytes = hex::decode(master.trim()).map_err(|_| CryptoError::BadKey)?;
        let master: [u8; 32] = bytes.try_into().map_err(|_| CryptoError::BadKey)?;
        let enc = derive(&master, b"lifelong/pii/encrypt/v1");
        let lookup = derive(&master, b"lifelong/pii/lookup/v1");
        Ok(PiiKeys {
            cipher: XChaCha20Poly1305::new((&enc).into()),
            lookup,
        })
    }

    /// A fresh random master key, as 64 hex digits.
    pub fn generate_hex() -> String {
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        hex::encode(key)
    }

    /// Encrypt `plain`; the output is `nonce ‖ ciphertext`.
    pub fn encrypt(&self, plain: &str) -> Vec<u8> {
        let mut nonce = [0u8; 24];
        rand::thread_rng().fill_bytes(&mut nonce);
        let ct = self
            .cipher
            .encrypt(XNonce::from_slice(&nonce), plain.as_bytes())
            .expect("XChaCha20-Poly1305 encryption of a short buffer cannot fail");
        let mut out = Vec::with_capacity(24 + ct.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out
    }

    /// Decrypt what [`PiiKeys::encrypt`] produced.
    pub fn decrypt(&self, sealed: &[u8]) -> Result<String, CryptoError> {
        if sealed.len() < 24 {
            return Err(CryptoError::Decrypt);
        }
        let (nonce, ct) = sealed.split_at(24);
        let plain = self
            .cipher
            .decrypt(XNonce::from_slice(nonce), ct)
            .map_err(|_| CryptoError::Decrypt)?;
        String::from_utf8(plain).map_err(|_| CryptoError::Decrypt)
    }

    /// The keyed hash used to find and de-duplicate a value without storing it.
    pub fn lookup_hash(&self, value: &str) -> Vec<u8> {
        let mut mac =
            <HmacSha256 as Mac>::new_from_slice(&self.lookup).expect("HMAC takes any key size");
        mac.update(value.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }
}

fn derive(master: &[u8; 32], label: &[u8]) -> [u8; 32] {
    let mut mac = <HmacSha256 as Mac>::new_from_slice(master).expect("HMAC takes any key size");
    mac.update(label);
    mac.finalize().into_bytes().into()
}

/// Hash a password with argon2id and a random salt (PHC string format).
pub fn hash_password(password: &str) -> Result<String, CryptoError> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| CryptoError::Hash)
}

/// Check a password against a stored argon2 hash.
pub fn verify_password(password: &str, stored: &str) -> bool {
    match PasswordHash::new(stored) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A random bearer token (256 bits, URL-safe base64) and the hash to store.
pub fn new_token() -> (String, Vec<u8>) {
    let mut raw = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    let token = format!(
        "llt_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    );
    let hash = token_hash(&token);
    (token, hash)
}

/// The stored form of a bearer token.
pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encrypt_round_trips_and_is_randomised() {
        let keys = PiiKeys::from_hex(&PiiKeys::generate_hex()).unwrap();
        let a = keys.encrypt("11010519491231002X");
        let b = keys.encrypt("11010519491231002X");
        assert_ne!(a, b, "each encryption uses a fresh nonce");
        assert_eq!(keys.decrypt(&a).unwrap(), "11010519491231002X");
        assert_eq!(keys.lookup_hash("x"), keys.lookup_hash("x"));
    }

    #[test]
    fn wrong_key_cannot_decrypt_and_debug_hides_keys() {
        let k1 = PiiKeys::from_hex(&PiiKeys::generate_hex()).unwrap();
        let k2 = PiiKeys::from_hex(&PiiKeys::generate_hex()).unwrap();
        assert!(k2.decrypt(&k1.encrypt("secret")).is_err());
        assert_eq!(format!("{k1:?}"), "PiiKeys(***)");
        assert!(PiiKeys::from_hex("abcd").is_err());
    }

    #[test]
    fn passwords_verify() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong", &h));
    }
}
