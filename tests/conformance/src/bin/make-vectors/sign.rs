//! Signing test tokens, and writing the tokens bundle's key sets from the
//! private keys in `tests/keys/`.

use super::*;

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub struct Signer {
    pub key: EncodingKey,
    pub alg: Algorithm,
    pub kid: Option<&'static str>,
}

pub fn pem(name: &str) -> Vec<u8> {
    std::fs::read(root().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

impl Signer {
    pub fn ed(path: &str, kid: &'static str) -> Self {
        Self {
            key: EncodingKey::from_ed_pem(&pem(path)).expect("ed key"),
            alg: Algorithm::EdDSA,
            kid: Some(kid),
        }
    }

    pub fn ec(path: &str, alg: Algorithm, kid: &'static str) -> Self {
        Self {
            key: EncodingKey::from_ec_pem(&pem(path)).expect("ec key"),
            alg,
            kid: Some(kid),
        }
    }

    pub fn rsa(alg: Algorithm, kid: &'static str) -> Self {
        Self {
            key: EncodingKey::from_rsa_pem(&pem("tests/keys/rsa2048.pem")).expect("rsa key"),
            alg,
            kid: Some(kid),
        }
    }

    pub fn jwk(&self, alg: Option<Algorithm>) -> Value {
        let jwk = Jwk::from_encoding_key(&self.key, self.alg).expect("jwk");
        let mut v = serde_json::to_value(jwk).expect("jwk json");
        let obj = v.as_object_mut().expect("object");
        obj.remove("alg");
        if let Some(a) = alg {
            obj.insert("alg".into(), serde_json::to_value(a).expect("alg"));
        }
        if let Some(kid) = self.kid {
            obj.insert("kid".into(), json!(kid));
        }
        v
    }

    /// Signs with header fields `typ` and extra ones merged over alg/kid.
    pub fn sign_with(&self, header: Value, claims: &Value) -> String {
        let mut h = Map::new();
        h.insert("alg".into(), serde_json::to_value(self.alg).expect("alg"));
        if let Some(kid) = self.kid {
            h.insert("kid".into(), json!(kid));
        }
        for (k, v) in header.as_object().cloned().unwrap_or_default() {
            if v.is_null() {
                h.remove(&k);
            } else {
                h.insert(k, v);
            }
        }
        let input = format!(
            "{}.{}",
            b64(Value::Object(h).to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &self.key, self.alg).expect("sign");
        format!("{input}.{sig}")
    }

    pub fn sign(&self, typ: &str, claims: &Value) -> String {
        self.sign_with(json!({ "typ": typ }), claims)
    }

    /// Signs a header and a payload given as raw JSON text, for tokens no
    /// JSON value can hold (a member named twice).
    pub fn sign_raw(&self, header: &str, payload: &str) -> String {
        let input = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
        let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &self.key, self.alg).expect("sign");
        format!("{input}.{sig}")
    }
}

pub fn write_key_sets() -> (Signer, Signer, Signer, Signer, Signer, Signer) {
    let dir = root().join("tests/bundles/tokens");
    let ed = Signer::ed("tests/keys/ed.pem", "ed-1");
    let ec256 = Signer::ec("tests/keys/p256.pem", Algorithm::ES256, "ec256-1");
    let ec384 = Signer::ec("tests/keys/p384.pem", Algorithm::ES384, "ec384-1");
    let rsa = Signer::rsa(Algorithm::RS256, "rsa-1");
    let gl = Signer::ed("tests/keys/greenlight.pem", "gl-1");
    let hs = Signer {
        key: EncodingKey::from_secret(b"greenlight-conformance-shared-secret-32b"),
        alg: Algorithm::HS256,
        kid: Some("hs-1"),
    };
    let write = |name: &str, keys: Vec<Value>| {
        let text = serde_json::to_string_pretty(&json!({ "keys": keys })).expect("json") + "\n";
        std::fs::write(dir.join(name), text).expect("write jwks");
    };
    write("ed.jwks.json", vec![ed.jwk(Some(Algorithm::EdDSA))]);
    write(
        "ec.jwks.json",
        vec![
            ec256.jwk(Some(Algorithm::ES256)),
            ec384.jwk(Some(Algorithm::ES384)),
        ],
    );
    // rsa-1 carries no `alg`, so it serves every RSA algorithm the issuer
    // allows; rsa-bound is the same key bound to RS256 only.
    let mut bound = rsa.jwk(Some(Algorithm::RS256));
    bound["kid"] = json!("rsa-bound");
    write("rsa.jwks.json", vec![rsa.jwk(None), bound]);
    write(
        "hs.jwks.json",
        vec![json!({ "kty": "oct", "kid": "hs-1", "alg": "HS256",
                     "k": b64(b"greenlight-conformance-shared-secret-32b") })],
    );
    write("greenlight.jwks.json", vec![gl.jwk(Some(Algorithm::EdDSA))]);
    // What a provider may publish beside its signing key: a key of a kind
    // Greenlight does not verify with (fetched sets keep their usable keys).
    let mixed = json!({ "keys": [
        { "kty": "EC", "crv": "P-521", "kid": "p521-1", "alg": "ES512",
          "x": "AQ", "y": "AQ" },
        ed.jwk(Some(Algorithm::EdDSA)),
    ] });
    std::fs::write(
        root().join("tests/keys/fetched-mixed.jwks.json"),
        serde_json::to_string_pretty(&mixed).expect("json") + "\n",
    )
    .expect("write jwks");
    // The claims bundle trusts the same two keys.
    for name in ["ed.jwks.json", "greenlight.jwks.json"] {
        std::fs::copy(
            dir.join(name),
            root().join("tests/bundles/claims").join(name),
        )
        .expect("copy jwks");
    }
    (ed, ec256, ec384, rsa, gl, hs)
}
