//! Greenlight's signing keys at rest: sealed with AES-256-GCM under a
//! key-encryption key (KEK) the operator supplies from the environment or
//! a file (`[signing] key_encryption_key_env` / `key_encryption_key_file`),
//! so the store alone (a backup, a read replica, a leaked SQLite file)
//! never yields a key that can mint action tokens. Every replica needs the
//! same KEK. Without one, keys are stored as plain PEM and the server says
//! so at start.
//!
//! Sealed text: `greenlight-sealed:v1:` then base64 of the 12-byte nonce
//! and the ciphertext with its tag; the key id is the additional data, so
//! a sealed key cannot be moved under another id.

use anyhow::Context;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};

/// What a sealed key starts with.
const SEALED: &str = "greenlight-sealed:v1:";

/// Seals and opens signing keys; holds no KEK when none is configured.
pub struct Seal {
    key: Option<LessSafeKey>,
}

impl std::fmt::Debug for Seal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Seal")
            .field("sealing", &self.key.is_some())
            .finish()
    }
}

impl Seal {
    /// No KEK: keys are stored as plain PEM.
    pub fn none() -> Self {
        Self { key: None }
    }

    /// A KEK given as base64 of 32 bytes (`openssl rand -base64 32`);
    /// `source` names where it came from, for messages.
    pub fn from_base64(text: &str, source: &str) -> anyhow::Result<Self> {
        let bytes = STANDARD
            .decode(text.trim())
            .with_context(|| format!("the key-encryption key in {source} is not base64"))?;
        let key = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| {
            anyhow::anyhow!(
                "the key-encryption key in {source} has {} bytes; it needs 32 (openssl rand -base64 32)",
                bytes.len()
            )
        })?;
        Ok(Self {
            key: Some(LessSafeKey::new(key)),
        })
    }

    /// Whether keys are sealed.
    pub fn is_sealing(&self) -> bool {
        self.key.is_some()
    }

    /// The text to store for the private key `pem` of key `kid`.
    pub fn seal(&self, kid: &str, pem: &str) -> anyhow::Result<String> {
        let Some(key) = &self.key else {
            return Ok(pem.to_owned());
        };
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| anyhow::anyhow!("no entropy for a nonce: {e}"))?;
        let mut data = pem.as_bytes().to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(kid.as_bytes()),
            &mut data,
        )
        .map_err(|_| anyhow::anyhow!("cannot seal signing key `{kid}`"))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&data);
        Ok(format!("{SEALED}{}", STANDARD.encode(out)))
    }

    /// The private key PEM of key `kid` from its stored text.
    pub fn open(&self, kid: &str, stored: &str) -> anyhow::Result<String> {
        let Some(sealed) = stored.strip_prefix(SEALED) else {
            return Ok(stored.to_owned());
        };
        let key = self.key.as_ref().ok_or_else(|| {
            anyhow::anyhow!(
                "signing key `{kid}` is sealed with a key-encryption key: set \
                 [signing] key_encryption_key_env or key_encryption_key_file"
            )
        })?;
        let wrong =
            || anyhow::anyhow!("signing key `{kid}` cannot be opened with this key-encryption key");
        let raw = STANDARD.decode(sealed).map_err(|_| wrong())?;
        if raw.len() < NONCE_LEN {
            return Err(wrong());
        }
        let (nonce, data) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| wrong())?;
        let mut data = data.to_vec();
        let plain = key
            .open_in_place(nonce, Aad::from(kid.as_bytes()), &mut data)
            .map_err(|_| wrong())?;
        String::from_utf8(plain.to_vec()).map_err(|_| wrong())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEK: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

    #[test]
    fn a_sealed_key_opens_only_with_its_kek_and_under_its_id() {
        let seal = Seal::from_base64(KEK, "a test").expect("kek");
        let pem = "-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----\n";
        let stored = seal.seal("k1", pem).expect("sealed");
        assert!(stored.starts_with(SEALED) && !stored.contains("PRIVATE KEY"));
        assert_eq!(seal.open("k1", &stored).expect("opens"), pem);
        assert_eq!(
            seal.open("k2", &stored).map_err(|e| e.to_string()),
            Err("signing key `k2` cannot be opened with this key-encryption key".to_owned())
        );
        let other = Seal::from_base64(&STANDARD.encode([7u8; 32]), "another").expect("kek");
        assert!(other.open("k1", &stored).is_err());
        assert_eq!(
            Seal::none().open("k1", &stored).map_err(|e| e.to_string()),
            Err("signing key `k1` is sealed with a key-encryption key: set [signing] key_encryption_key_env or key_encryption_key_file".to_owned())
        );
        // A plain key still opens (stores from before sealing).
        assert_eq!(seal.open("k0", pem).expect("plain"), pem);
        assert_eq!(
            Seal::from_base64("c2hvcnQ=", "a file").map(|_| ()).map_err(|e| e.to_string()),
            Err("the key-encryption key in a file has 5 bytes; it needs 32 (openssl rand -base64 32)".to_owned())
        );
    }
}
