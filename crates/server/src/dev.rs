//! Development tokens signed with a bundle's `[dev]` key, so a person can
//! try real requests. A bundle without a `[dev]` section is refused.

use std::path::Path;

use anyhow::{Context, bail};
use greenlight_core::config::Config;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Map, Value, json};

/// What goes into a development token.
#[derive(Clone, Debug)]
pub struct DevTokenRequest {
    /// `sub`.
    pub subject: String,
    /// `scope`, space-separated.
    pub scope: Option<String>,
    /// `client_id`; `greenlight-dev` when `None`.
    pub client_id: Option<String>,
    /// Extra claims; a value that parses as JSON is used as JSON, otherwise
    /// as a string; `null` removes the claim.
    pub claims: Vec<(String, String)>,
    /// Lifetime in seconds.
    pub ttl: u64,
    /// `iat`, in Unix seconds.
    pub now: u64,
}

/// Signs a development access token with the bundle's `[dev]` key.
pub fn dev_token(bundle_dir: &Path, req: &DevTokenRequest) -> anyhow::Result<String> {
    let cfg_path = bundle_dir.join(greenlight_core::bundle::CONFIG_FILE);
    let text = std::fs::read_to_string(&cfg_path)
        .with_context(|| format!("cannot read {}", cfg_path.display()))?;
    let config: Config =
        toml::from_str(&text).with_context(|| format!("{} is not valid", cfg_path.display()))?;
    let Some(dev) = config.dev else {
        bail!(
            "bundle `{}` has no `[dev]` signing key: development tokens are only for bundles that ship one",
            bundle_dir.display()
        );
    };
    let issuer = config
        .issuers
        .iter()
        .find(|i| i.issuer == dev.issuer)
        .with_context(|| format!("`[dev]` signs for `{}`, which is not an issuer", dev.issuer))?;
    let key_path = bundle_dir.join(&dev.signing_key);
    let pem = std::fs::read(&key_path)
        .with_context(|| format!("cannot read the dev key {}", key_path.display()))?;
    let key = EncodingKey::from_ed_pem(&pem)
        .with_context(|| format!("{} is not an Ed25519 PKCS#8 PEM key", key_path.display()))?;
    let mut claims = Map::new();
    claims.insert("iss".into(), json!(issuer.issuer));
    claims.insert("aud".into(), json!(issuer.audience));
    claims.insert("sub".into(), json!(req.subject));
    claims.insert(
        "client_id".into(),
        json!(req.client_id.as_deref().unwrap_or("greenlight-dev")),
    );
    claims.insert("iat".into(), json!(req.now));
    // A development token stands for a person who has just signed in.
    claims.insert("auth_time".into(), json!(req.now));
    claims.insert("exp".into(), json!(req.now + req.ttl));
    claims.insert(
        "jti".into(),
        json!(format!("dev-{}-{}", req.subject, req.now)),
    );
    if let Some(scope) = &req.scope {
        claims.insert("scope".into(), json!(scope));
    }
    for (k, v) in &req.claims {
        match serde_json::from_str::<Value>(v).unwrap_or_else(|_| Value::String(v.clone())) {
            // `null` removes a claim (say, `auth_time=null`).
            Value::Null => claims.remove(k),
            value => claims.insert(k.clone(), value),
        };
    }
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(dev.key_id.clone());
    header.typ = Some(
        issuer
            .require_typ
            .clone()
            .unwrap_or_else(|| "JWT".to_owned()),
    );
    Ok(jsonwebtoken::encode(&header, &claims, &key)?)
}
