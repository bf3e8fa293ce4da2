//! The `crypto` import: signature checks with ring, at native speed.
//!
//! The module decides everything about a token but this one step (the WIT
//! `crypto` interface says why that keeps the sandbox's promise). What
//! ring checks, it answers `valid` or `invalid`; anything else (an
//! algorithm it is not asked about, an RSA key outside what ring verifies)
//! is `not-available`, and the module checks it itself: never a different
//! verdict, only a slower one.

use std::sync::atomic::Ordering;

use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};

use crate::bindings::greenlight::approval::crypto::{Check, Host, PublicKey, RsaKey};
use crate::pool::HostState;

impl Host for HostState {
    fn verify_signature(
        &mut self,
        alg: String,
        key: PublicKey,
        message: Vec<u8>,
        signature: Vec<u8>,
    ) -> Check {
        if !self.native_signatures {
            return Check::NotAvailable;
        }
        let answer = verify(&alg, &key, &message, &signature);
        if answer != Check::NotAvailable {
            self.native_checks.fetch_add(1, Ordering::Relaxed);
        }
        answer
    }
}

/// Whether ring verifies with this RSA key exactly as the module would: a
/// modulus of 2048 to 4096 bits, odd, and an odd exponent from 3 to
/// 2^33 - 1. Ring refuses keys below 2048 bits, which the module takes;
/// the module (RustCrypto's `rsa`) refuses keys above 4096 bits, which
/// ring takes: both are left to the module.
fn rsa_fits(k: &RsaKey) -> bool {
    let bits = |v: &[u8]| match v.first() {
        Some(first) if *first != 0 => (v.len() - 1) * 8 + (8 - first.leading_zeros() as usize),
        _ => 0,
    };
    let odd = |v: &[u8]| v.last().is_some_and(|b| b & 1 == 1);
    let n_bits = bits(&k.n);
    let e_bits = bits(&k.e);
    (2048..=4096).contains(&n_bits)
        && odd(&k.n)
        && odd(&k.e)
        && e_bits <= 33
        && !(e_bits <= 2 && k.e.last().is_some_and(|b| *b < 3))
}

/// Checks `sig` over `msg` with `key` for the JOSE algorithm `alg`.
pub(crate) fn verify(alg: &str, key: &PublicKey, msg: &[u8], sig: &[u8]) -> Check {
    let valid = match (alg, key) {
        ("RS256" | "RS384" | "RS512" | "PS256" | "PS384" | "PS512", PublicKey::Rsa(k)) => {
            if !rsa_fits(k) {
                return Check::NotAvailable;
            }
            let params: &signature::RsaParameters = match alg {
                "RS256" => &signature::RSA_PKCS1_2048_8192_SHA256,
                "RS384" => &signature::RSA_PKCS1_2048_8192_SHA384,
                "RS512" => &signature::RSA_PKCS1_2048_8192_SHA512,
                "PS256" => &signature::RSA_PSS_2048_8192_SHA256,
                "PS384" => &signature::RSA_PSS_2048_8192_SHA384,
                _ => &signature::RSA_PSS_2048_8192_SHA512,
            };
            RsaPublicKeyComponents { n: &k.n, e: &k.e }
                .verify(params, msg, sig)
                .is_ok()
        }
        ("ES256", PublicKey::Ec(point)) => {
            UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                .verify(msg, sig)
                .is_ok()
        }
        ("ES384", PublicKey::Ec(point)) => {
            UnparsedPublicKey::new(&signature::ECDSA_P384_SHA384_FIXED, point)
                .verify(msg, sig)
                .is_ok()
        }
        ("EdDSA", PublicKey::Ed25519(x)) => UnparsedPublicKey::new(&signature::ED25519, x)
            .verify(msg, sig)
            .is_ok(),
        _ => return Check::NotAvailable,
    };
    if valid { Check::Valid } else { Check::Invalid }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rsa(n_bytes: usize, e: &[u8]) -> RsaKey {
        let mut n = vec![0xC1; n_bytes];
        if let Some(last) = n.last_mut() {
            *last = 0x01;
        }
        RsaKey { n, e: e.to_vec() }
    }

    #[test]
    fn only_keys_ring_verifies_as_the_module_does_are_taken() {
        assert!(rsa_fits(&rsa(256, &[1, 0, 1])));
        assert!(rsa_fits(&rsa(512, &[3])));
        // Too small for ring, too large for the module (a 6144-bit key's
        // tokens would pass here and fail there), even, an exponent ring
        // refuses.
        assert!(!rsa_fits(&rsa(128, &[1, 0, 1])));
        assert!(!rsa_fits(&rsa(513, &[1, 0, 1])));
        assert!(!rsa_fits(&rsa(768, &[1, 0, 1])));
        let mut even = rsa(256, &[1, 0, 1]);
        even.n[255] = 2;
        assert!(!rsa_fits(&even));
        assert!(!rsa_fits(&rsa(256, &[1])));
        assert!(!rsa_fits(&rsa(256, &[2])));
        // 2^32 + 1 is within ring's 33 bits; 2^33 + 1 is not.
        assert!(rsa_fits(&rsa(256, &[1, 0, 0, 0, 1])));
        assert!(!rsa_fits(&rsa(256, &[2, 0, 0, 0, 1])));
        assert!(!rsa_fits(&rsa(256, &[])));
    }

    #[test]
    fn what_ring_is_not_asked_about_is_left_to_the_module() {
        let key = PublicKey::Ed25519(vec![0; 32]);
        for alg in ["HS256", "ES256", "RS256", "none", ""] {
            assert_eq!(
                verify(alg, &key, b"m", &[0; 64]),
                Check::NotAvailable,
                "{alg}"
            );
        }
        assert_eq!(
            verify(
                "RS256",
                &PublicKey::Rsa(rsa(128, &[1, 0, 1])),
                b"m",
                &[0; 128]
            ),
            Check::NotAvailable
        );
    }
}
