//! Greenlight's own signing key: Ed25519, generated on first start and
//! persisted in the store, so every replica and every restart signs with
//! the same key and publishes the same JWKS.

use anyhow::Context;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use greenlight_store::{SigningKey, Store, StoreError};

use super::seal::Seal;
use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

/// The fixed PKCS#8 v1 prefix of an Ed25519 private key (RFC 8410 §7):
/// SEQUENCE { INTEGER 0, SEQUENCE { OID 1.3.101.112 }, OCTET STRING { OCTET STRING (32 bytes) } }.
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// Signs action tokens with the active key and knows the public keys to publish.
pub struct Signer {
    kid: String,
    created_at: i64,
    key: EncodingKey,
    jwks: Value,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// A new Ed25519 key created at `now`, succeeding the key `succeeds`
/// (`""` for a store's first key), its private half sealed by `seal`.
fn generate(now: i64, succeeds: &str, seal: &Seal) -> anyhow::Result<SigningKey> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("no entropy for a signing key: {e}"))?;
    let mut der = ED25519_PKCS8_PREFIX.to_vec();
    der.extend_from_slice(&seed);
    let key = EncodingKey::from_ed_der(&der);
    let jwk = Jwk::from_encoding_key(&key, Algorithm::EdDSA)?;
    let kid = jwk.thumbprint(ThumbprintHash::SHA256)?;
    let mut public = serde_json::to_value(&jwk)?;
    public["kid"] = json!(kid);
    public["use"] = json!("sig");
    let body = STANDARD.encode(&der);
    let private_key_pem = seal.seal(
        &kid,
        &format!("-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n"),
    )?;
    Ok(SigningKey {
        kid,
        algorithm: "EdDSA".to_owned(),
        private_key_pem,
        public_jwk: public,
        created_at: now,
        retired_at: None,
        publish_until: None,
        succeeds: Some(succeeds.to_owned()),
    })
}

/// The last key of the succession, which a new key succeeds: the newest
/// key no other key succeeds (`""` for an empty store). Not simply the
/// newest, which two keys created in the same second would leave to
/// chance.
fn tip(keys: &[SigningKey]) -> String {
    keys.iter()
        .find(|k| !keys.iter().any(|o| o.succeeds.as_deref() == Some(&k.kid)))
        .map_or_else(String::new, |k| k.kid.clone())
}

impl Signer {
    /// Loads the keys at `now`, creating and persisting one on first start.
    ///
    /// Every active key is published. The key that signs is the newest
    /// active key that has been published for `grace` seconds; a newer one
    /// is published first, so every replica and gateway can fetch it before
    /// any token carries it. With none old enough, the oldest active key
    /// signs.
    pub async fn load_or_create(
        store: &Store,
        now: i64,
        grace: i64,
        seal: &Seal,
    ) -> anyhow::Result<Self> {
        // Newest first, as the store lists them.
        let mut keys = store.signing_keys().await?;
        if !keys.iter().any(SigningKey::is_active) {
            // First start (or every key withdrawn): nobody holds a token
            // signed by a key to come, so it signs at once. Replicas that
            // get here together race on the store's succession index; one
            // key wins and every replica uses it.
            let k = generate(now, &tip(&keys), seal)?;
            match store.insert_signing_key(&k).await {
                Ok(()) => tracing::info!(kid = %k.kid, "generated a new signing key"),
                Err(StoreError::Conflict(_)) => {
                    tracing::info!("another replica generated the signing key first; using it")
                }
                Err(e) => return Err(e.into()),
            }
            keys = store.signing_keys().await?;
        }
        let active: Vec<&SigningKey> = keys.iter().filter(|k| k.is_active()).collect();
        let signing = active
            .iter()
            .find(|k| k.created_at.saturating_add(grace) <= now)
            .or(active.last())
            .copied()
            .ok_or_else(|| anyhow::anyhow!("no active signing key"))?
            .clone();
        let pem = seal.open(&signing.kid, &signing.private_key_pem)?;
        let key = EncodingKey::from_ed_pem(pem.as_bytes())
            .context("the stored signing key is not an Ed25519 PKCS#8 key")?;
        let published: Vec<Value> = keys
            .iter()
            .filter(|k| k.is_published(now))
            .map(|k| k.public_jwk.clone())
            .collect();
        Ok(Self {
            kid: signing.kid,
            created_at: signing.created_at,
            key,
            jwks: json!({ "keys": published }),
        })
    }

    /// The key id tokens are signed with now.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Adds the next signing key. It is published at once and signs once it
    /// has been published for the servers' grace period
    /// ([`Signer::load_or_create`]); the keys it replaces are then retired
    /// by [`Signer::retire_superseded`]. Returns the new key id, or, when
    /// another replica added the successor of the same key at the same
    /// time, that key's id.
    pub async fn rotate(store: &Store, now: i64, seal: &Seal) -> anyhow::Result<String> {
        let newest = tip(&store.signing_keys().await?);
        let new = generate(now, &newest, seal)?;
        match store.insert_signing_key(&new).await {
            Ok(()) => {
                tracing::info!(kid = %new.kid, "added the next signing key; it signs after the grace period");
                Ok(new.kid)
            }
            // Another replica (or `keys rotate`) added the successor of the
            // same key at the same time: that one is the next key.
            Err(StoreError::Conflict(_)) => store
                .signing_keys()
                .await?
                .into_iter()
                .find(|k| k.succeeds.as_deref() == Some(newest.as_str()))
                .map(|k| k.kid)
                .ok_or_else(|| anyhow::anyhow!("the next signing key was added and is gone")),
            Err(e) => Err(e.into()),
        }
    }

    /// Retires every active key older than the one signing now, keeping
    /// each published until `publish_until`, so the tokens it signed keep
    /// verifying until they expire. Returns how many were retired.
    pub async fn retire_superseded(
        &self,
        store: &Store,
        now: i64,
        publish_until: i64,
    ) -> anyhow::Result<usize> {
        let old: Vec<SigningKey> = store
            .signing_keys()
            .await?
            .into_iter()
            .filter(|k| k.is_active() && k.created_at < self.created_at)
            .collect();
        for k in &old {
            store
                .retire_signing_key(&k.kid, now, Some(publish_until))
                .await?;
            tracing::info!(old = %k.kid, signing = %self.kid, publish_until, "retired a superseded signing key");
        }
        Ok(old.len())
    }

    /// When the newest active key was created, to decide on automatic
    /// rotation.
    pub async fn newest_since(store: &Store) -> anyhow::Result<Option<i64>> {
        Ok(store
            .signing_keys()
            .await?
            .iter()
            .filter(|k| k.is_active())
            .map(|k| k.created_at)
            .max())
    }

    /// The JWKS to publish (and to hand the engine for action tokens).
    pub fn jwks(&self) -> &Value {
        &self.jwks
    }

    /// Signs the claims of an action token, typed `greenlight-action+jwt`.
    pub fn sign(&self, claims: &Value) -> anyhow::Result<String> {
        self.sign_as(greenlight_types::ACTION_TOKEN_TYP, claims)
    }

    /// Signs `claims` as a compact JWS typed `typ`. Each kind of artifact
    /// Greenlight signs has its own `typ`, and every verifier demands its
    /// own, so none stands in for another (an access request's binding
    /// token is never an action token).
    pub fn sign_as(&self, typ: &str, claims: &Value) -> anyhow::Result<String> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.typ = Some(typ.to_owned());
        header.kid = Some(self.kid.clone());
        Ok(jsonwebtoken::encode(&header, claims, &self.key)?)
    }

    /// The claims of `token`, a compact JWS typed `typ` that one of the
    /// published keys signed; why not otherwise. Only the signature, the
    /// algorithm, `typ` and `kid` are checked here: the caller checks the
    /// claims (against the server's clock, which tests move).
    pub fn verify_as(&self, typ: &str, token: &str) -> Result<Value, String> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| format!("not a signed JWT: {e}"))?;
        if header.alg != Algorithm::EdDSA {
            return Err(format!("`alg` {:?} is not EdDSA", header.alg));
        }
        if header.typ.as_deref() != Some(typ) {
            return Err(format!(
                "`typ` is {}, not `{typ}`",
                header
                    .typ
                    .as_deref()
                    .map_or_else(|| "missing".to_owned(), |t| format!("`{t}`"))
            ));
        }
        let kid = header.kid.ok_or("no `kid`")?;
        let jwk = self.jwks["keys"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|k| k["kid"] == kid.as_str())
            .ok_or_else(|| format!("key `{kid}` is not one of this server's published keys"))?;
        let jwk: Jwk = serde_json::from_value(jwk.clone()).map_err(|e| e.to_string())?;
        let key = jsonwebtoken::DecodingKey::from_jwk(&jwk).map_err(|e| e.to_string())?;
        let mut validation = jsonwebtoken::Validation::new(Algorithm::EdDSA);
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        jsonwebtoken::decode::<Value>(token, &key, &validation)
            .map(|d| d.claims)
            .map_err(|e| format!("signature check failed: {e}"))
    }
}
