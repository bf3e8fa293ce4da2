//! The signature layer: JWS compact parsing, key sets with each key bound to
//! one algorithm (RFC 8725 §3.1), and signature checks through `jsonwebtoken`
//! or, where the host offers it, its native primitive ([`crate::signature`]).
//!
//! Keys come only from configured key sets: `jku`, `x5u`, `jwk` and `x5c`
//! header parameters are never used to find a key.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Map, Value};

use greenlight_types::{Denial, DenialCode};

use crate::signature::{self, Check, PublicKey};

/// The largest token accepted, in bytes, checked before any decoding. An
/// RS512 token with a generous claim set is about 2 KiB; 8 KiB leaves room
/// for `authorization_details` while bounding the work a hostile token costs.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The algorithms Greenlight verifies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Alg {
    /// Ed25519.
    EdDSA,
    /// ECDSA P-256 with SHA-256.
    ES256,
    /// ECDSA P-384 with SHA-384.
    ES384,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// RSASSA-PSS with SHA-256.
    PS256,
    /// RSASSA-PSS with SHA-384.
    PS384,
    /// RSASSA-PSS with SHA-512.
    PS512,
    /// HMAC with SHA-256, only with a configured shared secret.
    HS256,
}

/// The kind of key an algorithm needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    Ed25519,
    P256,
    P384,
    Rsa,
    Oct,
}

impl Alg {
    /// Parses a JOSE `alg` name; `None` for anything Greenlight does not verify.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "EdDSA" => Self::EdDSA,
            "ES256" => Self::ES256,
            "ES384" => Self::ES384,
            "RS256" => Self::RS256,
            "RS384" => Self::RS384,
            "RS512" => Self::RS512,
            "PS256" => Self::PS256,
            "PS384" => Self::PS384,
            "PS512" => Self::PS512,
            "HS256" => Self::HS256,
            _ => return None,
        })
    }

    /// The JOSE name.
    pub fn name(self) -> &'static str {
        match self {
            Self::EdDSA => "EdDSA",
            Self::ES256 => "ES256",
            Self::ES384 => "ES384",
            Self::RS256 => "RS256",
            Self::RS384 => "RS384",
            Self::RS512 => "RS512",
            Self::PS256 => "PS256",
            Self::PS384 => "PS384",
            Self::PS512 => "PS512",
            Self::HS256 => "HS256",
        }
    }

    fn family(self) -> Family {
        match self {
            Self::EdDSA => Family::Ed25519,
            Self::ES256 => Family::P256,
            Self::ES384 => Family::P384,
            Self::RS256 | Self::RS384 | Self::RS512 | Self::PS256 | Self::PS384 | Self::PS512 => {
                Family::Rsa
            }
            Self::HS256 => Family::Oct,
        }
    }

    fn jsonwebtoken(self) -> Algorithm {
        match self {
            Self::EdDSA => Algorithm::EdDSA,
            Self::ES256 => Algorithm::ES256,
            Self::ES384 => Algorithm::ES384,
            Self::RS256 => Algorithm::RS256,
            Self::RS384 => Algorithm::RS384,
            Self::RS512 => Algorithm::RS512,
            Self::PS256 => Algorithm::PS256,
            Self::PS384 => Algorithm::PS384,
            Self::PS512 => Algorithm::PS512,
            Self::HS256 => Algorithm::HS256,
        }
    }
}

/// One verification key.
#[derive(Clone)]
pub struct Key {
    /// The JWK `kid`.
    pub kid: Option<String>,
    /// The algorithm the JWK declares with `alg`; when set, only it is accepted.
    alg: Option<Alg>,
    family: Family,
    key: DecodingKey,
    /// The public parts a host's native primitive checks with (none for a
    /// shared secret).
    public: Option<PublicKey>,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("family", &self.family)
            .finish_non_exhaustive()
    }
}

impl Key {
    /// Builds a key from one JWK object.
    pub fn from_jwk_value(value: &Value) -> Result<Self, String> {
        let jwk: Jwk =
            serde_json::from_value(value.clone()).map_err(|e| format!("not a usable JWK: {e}"))?;
        Self::from_jwk(&jwk)
    }

    fn from_jwk(jwk: &Jwk) -> Result<Self, String> {
        let family = match &jwk.algorithm {
            AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
                // The verifier takes the first 32 bytes of `x` without
                // checking its length (a shorter one panicked it): a key
                // of another length is refused here, when it is loaded.
                coordinate_length(&p.x, "x", 32)?;
                Family::Ed25519
            }
            AlgorithmParameters::EllipticCurve(p) => {
                let (family, len) = match p.curve {
                    EllipticCurve::P256 => (Family::P256, 32),
                    EllipticCurve::P384 => (Family::P384, 48),
                    ref other => return Err(format!("curve `{other:?}` is not supported")),
                };
                coordinate_length(&p.x, "x", len)?;
                coordinate_length(&p.y, "y", len)?;
                family
            }
            AlgorithmParameters::RSA(_) => Family::Rsa,
            AlgorithmParameters::OctetKey(_) => Family::Oct,
            _ => return Err("key type is not supported".to_owned()),
        };
        let alg = match jwk.common.key_algorithm {
            None => None,
            Some(ka) => {
                let name = key_algorithm_name(ka);
                let alg = Alg::parse(name)
                    .ok_or_else(|| format!("key algorithm `{name}` is not supported"))?;
                if alg.family() != family {
                    return Err(format!(
                        "key algorithm `{name}` does not fit the key's type"
                    ));
                }
                Some(alg)
            }
        };
        let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("invalid key material: {e}"))?;
        let public = match family {
            Family::Oct => None,
            _ => signature::public_key(jwk),
        };
        Ok(Self {
            kid: jwk.common.key_id.clone(),
            alg,
            family,
            key,
            public,
        })
    }

    /// Whether this is an HMAC shared secret.
    pub fn is_shared_secret(&self) -> bool {
        self.family == Family::Oct
    }

    /// Checks that this key may verify `alg`.
    fn fits(&self, alg: Alg) -> Result<(), Denial> {
        if let Some(bound) = self.alg
            && bound != alg
        {
            return Err(Denial::new(
                DenialCode::TokenKeyMismatch,
                format!(
                    "key `{}` is bound to `{}`, not `{}`",
                    self.kid.as_deref().unwrap_or(""),
                    bound.name(),
                    alg.name()
                ),
            ));
        }
        if self.family != alg.family() {
            return Err(Denial::new(
                DenialCode::TokenKeyMismatch,
                format!(
                    "key `{}` cannot verify `{}`",
                    self.kid.as_deref().unwrap_or(""),
                    alg.name()
                ),
            ));
        }
        Ok(())
    }
}

/// The members of a private RSA or elliptic-curve JWK.
const PRIVATE_MEMBERS: [&str; 7] = ["d", "p", "q", "dp", "dq", "qi", "oth"];

/// Checks that a key's coordinate is base64url of exactly `len` bytes.
fn coordinate_length(value: &str, name: &str, len: usize) -> Result<(), String> {
    let bytes = URL_SAFE_NO_PAD
        .decode(value)
        .map_err(|_| format!("the key's `{name}` is not base64url"))?;
    if bytes.len() != len {
        return Err(format!(
            "the key's `{name}` is {} bytes, not {len}",
            bytes.len()
        ));
    }
    Ok(())
}

fn key_algorithm_name(ka: KeyAlgorithm) -> &'static str {
    match ka {
        KeyAlgorithm::HS256 => "HS256",
        KeyAlgorithm::HS384 => "HS384",
        KeyAlgorithm::HS512 => "HS512",
        KeyAlgorithm::ES256 => "ES256",
        KeyAlgorithm::ES384 => "ES384",
        KeyAlgorithm::RS256 => "RS256",
        KeyAlgorithm::RS384 => "RS384",
        KeyAlgorithm::RS512 => "RS512",
        KeyAlgorithm::PS256 => "PS256",
        KeyAlgorithm::PS384 => "PS384",
        KeyAlgorithm::PS512 => "PS512",
        KeyAlgorithm::EdDSA => "EdDSA",
        _ => "an encryption algorithm",
    }
}

/// The verification keys of one issuer.
#[derive(Clone, Debug, Default)]
pub struct KeySet {
    keys: Vec<Key>,
}

impl KeySet {
    /// Parses a JWKS document. Encryption keys (`use: enc`) are skipped;
    /// any other key that cannot be used is an error naming its index.
    pub fn from_jwks(text: &str) -> Result<Self, JwksError> {
        Self::parse_jwks(text, false).map(|(set, _)| set)
    }

    /// Parses a key set a host fetched from a provider: as
    /// [`KeySet::from_jwks`], except that a key this verifier cannot use
    /// (an unsupported curve or algorithm, a malformed key) is left out
    /// while others remain, so that one key of a kind Greenlight does not
    /// implement does not take all of a provider's keys away. Returns the
    /// set and why each key was left out. A key with a private part is
    /// still refused with the whole set, and so is a set of which no key
    /// is usable (naming the first key's fault).
    pub fn from_fetched_jwks(text: &str) -> Result<(Self, Vec<String>), JwksError> {
        Self::parse_jwks(text, true)
    }

    fn parse_jwks(text: &str, skip: bool) -> Result<(Self, Vec<String>), JwksError> {
        let doc: Value = serde_json::from_str(text).map_err(|e| JwksError {
            line: Some(e.line()),
            column: Some(e.column()),
            message: format!("not valid JSON: {e}"),
        })?;
        let keys = doc
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| JwksError::msg("a JWKS needs a `keys` array"))?;
        let mut out = Vec::with_capacity(keys.len());
        let mut skipped = Vec::new();
        for (i, value) in keys.iter().enumerate() {
            // A key set is public: one that holds a private key (RFC 7518
            // §6.2.2, §6.3.2) was published by mistake, and is refused.
            if let Some(member) = PRIVATE_MEMBERS.iter().find(|m| value.get(**m).is_some()) {
                return Err(JwksError::msg(format!(
                    "key {i}: a key set holds public keys only, and this key has the private member `{member}`"
                )));
            }
            let key = serde_json::from_value::<Jwk>(value.clone())
                .map_err(|e| format!("key {i}: not a usable JWK: {e}"))
                .and_then(|jwk| {
                    if jwk.common.public_key_use == Some(PublicKeyUse::Encryption) {
                        return Ok(None);
                    }
                    Key::from_jwk(&jwk)
                        .map(Some)
                        .map_err(|e| format!("key {i}: {e}"))
                });
            match key {
                Ok(Some(key)) => out.push(key),
                Ok(None) => {}
                Err(why) if skip => skipped.push(why),
                Err(why) => return Err(JwksError::msg(why)),
            }
        }
        if out.is_empty() {
            return Err(JwksError::msg(
                skipped
                    .first()
                    .cloned()
                    .unwrap_or_else(|| "the key set has no signing keys".to_owned()),
            ));
        }
        Ok((Self { keys: out }, skipped))
    }

    /// A set holding one key.
    pub fn single(key: Key) -> Self {
        Self { keys: vec![key] }
    }

    /// Whether the set has no keys (an issuer whose keys the host has not
    /// supplied yet).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Whether any key is a shared secret.
    pub fn has_shared_secret(&self) -> bool {
        self.keys.iter().any(Key::is_shared_secret)
    }

    /// Picks the key for a token: by `kid` when the header has one, else the
    /// only key that fits the algorithm.
    fn select(&self, kid: Option<&str>, alg: Alg) -> Result<&Key, Denial> {
        let key = match kid {
            Some(kid) => self
                .keys
                .iter()
                .find(|k| k.kid.as_deref() == Some(kid))
                .ok_or_else(|| {
                    Denial::new(
                        DenialCode::TokenUnknownKey,
                        format!("no key with kid `{kid}`"),
                    )
                })?,
            None => {
                let mut fitting = self.keys.iter().filter(|k| k.fits(alg).is_ok());
                match (fitting.next(), fitting.next()) {
                    (Some(k), None) => k,
                    (None, _) => {
                        return Err(Denial::new(
                            DenialCode::TokenUnknownKey,
                            format!("no key for `{}`", alg.name()),
                        ));
                    }
                    (Some(_), Some(_)) => {
                        return Err(Denial::new(
                            DenialCode::TokenUnknownKey,
                            "the token has no kid and several keys fit",
                        ));
                    }
                }
            }
        };
        key.fits(alg)?;
        Ok(key)
    }
}

/// A key set that could not be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JwksError {
    /// The 1-based line of a JSON syntax error.
    pub line: Option<usize>,
    /// The 1-based column of a JSON syntax error.
    pub column: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl JwksError {
    fn msg(message: impl Into<String>) -> Self {
        Self {
            line: None,
            column: None,
            message: message.into(),
        }
    }
}

/// A parsed JWS whose signature has not been checked yet.
#[derive(Debug)]
pub struct Unverified<'a> {
    /// The algorithm from the header, already known to be supported.
    pub alg: Alg,
    /// The header's `kid`.
    pub kid: Option<String>,
    /// The header's `typ`.
    pub typ: Option<String>,
    /// The decoded payload.
    pub payload: Vec<u8>,
    signing_input: &'a str,
    signature: &'a str,
}

fn b64(part: &str, what: &str) -> Result<Vec<u8>, Denial> {
    URL_SAFE_NO_PAD.decode(part).map_err(|_| {
        Denial::new(
            DenialCode::TokenMalformed,
            format!("the {what} is not base64url"),
        )
    })
}

/// Parses a JWS compact serialisation and checks its header: size cap,
/// shape, supported algorithm, `crit`. The signature is not checked yet.
pub fn parse(token: &str) -> Result<Unverified<'_>, Denial> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(Denial::new(
            DenialCode::TokenTooLarge,
            format!(
                "the token has {} bytes, more than the {MAX_TOKEN_BYTES} accepted",
                token.len()
            ),
        ));
    }
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() == 5 {
        return Err(Denial::new(
            DenialCode::TokenMalformed,
            "encrypted tokens (JWE) are not accepted",
        ));
    }
    let [header, payload, signature] = parts[..] else {
        return Err(Denial::new(
            DenialCode::TokenMalformed,
            format!(
                "a JWS compact token has 3 dot-separated parts, this one has {}",
                parts.len()
            ),
        ));
    };
    let header_bytes = b64(header, "header")?;
    let header: Map<String, Value> = crate::strict::object(&header_bytes).map_err(|e| match e {
        crate::strict::StrictError::Duplicate(name) => Denial::new(
            DenialCode::TokenMalformed,
            format!("the header names `{name}` twice"),
        ),
        crate::strict::StrictError::Malformed => Denial::new(
            DenialCode::TokenMalformed,
            "the header is not a JSON object",
        ),
    })?;
    let alg_name = match header.get("alg") {
        Some(Value::String(s)) => s.as_str(),
        _ => {
            return Err(Denial::new(
                DenialCode::TokenMalformed,
                "the header has no `alg` string",
            ));
        }
    };
    let alg = Alg::parse(alg_name).ok_or_else(|| {
        Denial::new(
            DenialCode::TokenUnsupportedAlgorithm,
            format!("algorithm `{alg_name}` is not supported"),
        )
    })?;
    if let Some(crit) = header.get("crit") {
        let names = crit.as_array().filter(|a| !a.is_empty()).ok_or_else(|| {
            Denial::new(
                DenialCode::TokenMalformed,
                "`crit` must be a non-empty array",
            )
        })?;
        // Greenlight understands no JWS extension, so any listed one is unknown.
        let first = names.first().and_then(Value::as_str).unwrap_or("");
        return Err(Denial::new(
            DenialCode::TokenUnknownCriticalHeader,
            format!("critical header parameter `{first}` is not understood"),
        ));
    }
    let string_field = |name: &str| -> Result<Option<String>, Denial> {
        match header.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(Denial::new(
                DenialCode::TokenMalformed,
                format!("the header's `{name}` is not a string"),
            )),
        }
    };
    let kid = string_field("kid")?;
    let typ = string_field("typ")?;
    let payload_bytes = b64(payload, "payload")?;
    if signature.is_empty() {
        return Err(Denial::new(
            DenialCode::TokenMalformed,
            "the signature is empty",
        ));
    }
    Ok(Unverified {
        alg,
        kid,
        typ,
        payload: payload_bytes,
        signing_input: &token[..token.len() - signature.len() - 1],
        signature,
    })
}

impl Unverified<'_> {
    /// Verifies the signature with the key `keys` selects for this header.
    pub fn verify(&self, keys: &KeySet) -> Result<(), Denial> {
        let key = keys.select(self.kid.as_deref(), self.alg)?;
        self.verify_with(key)
    }

    /// Verifies the signature with one given key: by the host's native
    /// primitive when it offers one for this algorithm and key
    /// ([`signature`]), else here.
    pub fn verify_with(&self, key: &Key) -> Result<(), Denial> {
        key.fits(self.alg)?;
        if let (Some(native), Some(public)) = (signature::native(), &key.public)
            && self.alg != Alg::HS256
            && let Ok(bytes) = URL_SAFE_NO_PAD.decode(self.signature)
            && signature::well_formed(self.alg, public, &bytes)
        {
            match native(self.alg, public, self.signing_input.as_bytes(), &bytes) {
                Check::Valid => return Ok(()),
                Check::Invalid => return Err(does_not_verify()),
                Check::NotAvailable => {}
            }
        }
        self.verify_here(key)
    }

    /// Verifies the signature with `jsonwebtoken`'s own primitives.
    fn verify_here(&self, key: &Key) -> Result<(), Denial> {
        match jsonwebtoken::crypto::verify(
            self.signature,
            self.signing_input.as_bytes(),
            &key.key,
            self.alg.jsonwebtoken(),
        ) {
            Ok(true) => Ok(()),
            Ok(false) => Err(does_not_verify()),
            Err(e) => Err(Denial::new(
                DenialCode::TokenBadSignature,
                format!("the signature cannot be checked: {e}"),
            )),
        }
    }
}

fn does_not_verify() -> Denial {
    Denial::new(
        DenialCode::TokenBadSignature,
        "the signature does not verify",
    )
}

/// Verifies a bare JWS against one JWK and returns its payload: the
/// signature layer alone, as the WIT `jose.verify-compact` exposes it.
pub fn verify_compact(token: &str, jwk: &str) -> Result<Vec<u8>, Denial> {
    let parsed = parse(token)?;
    let value: Value = serde_json::from_str(jwk).map_err(|e| {
        Denial::new(
            DenialCode::TokenUnknownKey,
            format!("the JWK is not JSON: {e}"),
        )
    })?;
    let key =
        Key::from_jwk_value(&value).map_err(|e| Denial::new(DenialCode::TokenUnknownKey, e))?;
    parsed.verify_with(&key)?;
    Ok(parsed.payload)
}
