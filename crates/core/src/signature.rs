//! A host's native signature primitive (the WIT `crypto` import).
//!
//! Token verification stays whole in the core: parsing, the algorithm
//! allow-list, each key bound to its algorithm and type, claims. Only the
//! last step, "is this signature valid over this message under this public
//! key?", may be answered by the host, where a native library does it many
//! times faster than the same arithmetic compiled to wasm. A host that does
//! not offer it (or not for this algorithm or key) answers
//! [`Check::NotAvailable`], and the core checks the signature itself.
//!
//! The sandbox's promise is unchanged: the module cannot reach anything
//! through this import (it sends the host a public key and a token the
//! host gave it), and the host, which already chooses the keys and the
//! tokens, gains no power over a decision it did not have.

use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk};

use crate::jws::Alg;

/// A verification key's public parts (the WIT `crypto.public-key`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublicKey {
    /// RSA: the modulus and the public exponent, big-endian, without
    /// leading zero bytes.
    Rsa {
        /// The modulus.
        n: Vec<u8>,
        /// The public exponent.
        e: Vec<u8>,
    },
    /// An EC point, uncompressed (`0x04 || x || y`).
    Ec(Vec<u8>),
    /// An Ed25519 public key (32 bytes).
    Ed25519(Vec<u8>),
}

/// A host's answer (the WIT `crypto.check`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// The signature is valid.
    Valid,
    /// The signature is not valid.
    Invalid,
    /// The host does not check this: the core does.
    NotAvailable,
}

/// A host's primitive: the algorithm, the key, the signing input and the
/// signature.
pub type Verifier = fn(Alg, &PublicKey, &[u8], &[u8]) -> Check;

static NATIVE: OnceLock<Verifier> = OnceLock::new();

/// Routes signature checks (but `HS256`'s) through `f` first. Set once per
/// process (a component instance's): later calls change nothing.
pub fn use_native(f: Verifier) {
    let _ = NATIVE.set(f);
}

/// The host's primitive, when one was given.
pub(crate) fn native() -> Option<Verifier> {
    NATIVE.get().copied()
}

fn b64(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text).ok()
}

/// Big-endian bytes without leading zeros.
fn trimmed(mut bytes: Vec<u8>) -> Vec<u8> {
    let zeros = bytes.iter().take_while(|b| **b == 0).count();
    bytes.drain(..zeros);
    bytes
}

/// A JWK's public parts, for the key types a host may check; `None` for a
/// shared secret or parts that do not decode (the core's own check then
/// decides).
pub(crate) fn public_key(jwk: &Jwk) -> Option<PublicKey> {
    match &jwk.algorithm {
        AlgorithmParameters::RSA(p) => Some(PublicKey::Rsa {
            n: trimmed(b64(&p.n)?),
            e: trimmed(b64(&p.e)?),
        }),
        AlgorithmParameters::EllipticCurve(p) => {
            let mut point = vec![4];
            point.extend(b64(&p.x)?);
            point.extend(b64(&p.y)?);
            Some(PublicKey::Ec(point))
        }
        AlgorithmParameters::OctetKeyPair(p) => Some(PublicKey::Ed25519(b64(&p.x)?)),
        _ => None,
    }
}

/// Whether `signature` has the length `alg` gives a signature under `key`:
/// only such a signature is offered to the host, so that one the core
/// would refuse to read is refused with the core's own words.
pub(crate) fn well_formed(alg: Alg, key: &PublicKey, signature: &[u8]) -> bool {
    let want = match (alg, key) {
        (Alg::EdDSA, PublicKey::Ed25519(_)) => 64,
        (Alg::ES256, PublicKey::Ec(p)) if p.len() == 65 => 64,
        (Alg::ES384, PublicKey::Ec(p)) if p.len() == 97 => 96,
        (
            Alg::RS256 | Alg::RS384 | Alg::RS512 | Alg::PS256 | Alg::PS384 | Alg::PS512,
            PublicKey::Rsa { n, .. },
        ) => n.len(),
        _ => return false,
    };
    signature.len() == want
}
