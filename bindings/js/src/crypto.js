// The `crypto` import (WIT `greenlight:approval/crypto`): signature checks
// with node:crypto (OpenSSL), at native speed.
//
// The policy module decides everything about a token but this one step: is
// this signature over this message valid under this public key? (The WIT
// interface says why that keeps the sandbox's promise.) What this cannot
// check exactly as the policy module would (a key OpenSSL will not build, an
// algorithm it is not asked about) it answers `not-available`, and the
// policy module checks the signature itself: the same verdict, slower.

import { constants, createPublicKey, verify } from 'node:crypto';

/** Keys built before, by algorithm and key bytes (a bundle has few). */
const KEYS = new Map();
const MAX_KEYS = 64;

const b64u = (bytes) => Buffer.from(bytes).toString('base64url');

/** A big-endian unsigned integer's bit length. */
function bits(bytes) {
  const first = bytes.findIndex((b) => b !== 0);
  if (first < 0) return 0;
  return (bytes.length - first - 1) * 8 + (32 - Math.clz32(bytes[first]));
}

/** The node:crypto key for a WIT `public-key`, or null when not ours to check. */
function publicKey(alg, key) {
  const id = `${alg}:${key.tag}:${key.tag === 'rsa' ? b64u(key.val.n) + '.' + b64u(key.val.e) : b64u(key.val)}`;
  if (KEYS.has(id)) return KEYS.get(id);
  let jwk = null;
  if ((alg.startsWith('RS') || alg.startsWith('PS')) && key.tag === 'rsa') {
    const { n, e } = key.val;
    const eBits = bits(e);
    // As the Rust host: 2048 to 4096 bits (the module refuses larger keys,
    // ring smaller ones), odd, an exponent from 3 to 2^33 - 1.
    const fits = bits(n) >= 2048 && bits(n) <= 4096 && n[n.length - 1] % 2 === 1 &&
      e.length > 0 && e[e.length - 1] % 2 === 1 && eBits <= 33 && !(eBits <= 2 && e[e.length - 1] < 3);
    if (fits) jwk = { kty: 'RSA', n: b64u(n), e: b64u(e) };
  } else if ((alg === 'ES256' || alg === 'ES384') && key.tag === 'ec') {
    const width = alg === 'ES256' ? 32 : 48;
    const p = key.val;
    if (p.length === 1 + 2 * width && p[0] === 4) {
      jwk = { kty: 'EC', crv: alg === 'ES256' ? 'P-256' : 'P-384', x: b64u(p.subarray(1, 1 + width)), y: b64u(p.subarray(1 + width)) };
    }
  } else if (alg === 'EdDSA' && key.tag === 'ed25519' && key.val.length === 32) {
    jwk = { kty: 'OKP', crv: 'Ed25519', x: b64u(key.val) };
  }
  let built = null;
  if (jwk !== null) {
    try {
      built = createPublicKey({ key: jwk, format: 'jwk' });
    } catch {
      // A key OpenSSL will not build (an invalid point, say): the policy
      // module says what is wrong with it.
      built = null;
    }
  }
  if (KEYS.size >= MAX_KEYS) KEYS.delete(KEYS.keys().next().value);
  KEYS.set(id, built);
  return built;
}

const HASH = { 256: 'sha256', 384: 'sha384', 512: 'sha512' };

/**
 * Checks `signature` over `message` with `key` for the JOSE algorithm `alg`.
 * @returns {'valid' | 'invalid' | 'not-available'}
 */
export function verifySignature(alg, key, message, signature) {
  try {
    const k = publicKey(alg, key);
    if (k === null) return 'not-available';
    let ok;
    if (alg === 'EdDSA') {
      ok = verify(null, message, k, signature);
    } else if (alg.startsWith('ES')) {
      ok = verify(HASH[alg.slice(2)], message, { key: k, dsaEncoding: 'ieee-p1363' }, signature);
    } else if (alg.startsWith('RS')) {
      ok = verify(HASH[alg.slice(2)], message, { key: k, padding: constants.RSA_PKCS1_PADDING }, signature);
    } else {
      const hash = HASH[alg.slice(2)];
      ok = verify(hash, message, { key: k, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: Number(alg.slice(2)) / 8 }, signature);
    }
    return ok ? 'valid' : 'invalid';
  } catch {
    // Never a trap: the policy module checks it.
    return 'not-available';
  }
}

/**
 * The import object's `crypto` interface: native checks, or none.
 * @param {boolean} native
 * @param {Int32Array} [counter] counts the checks answered (`valid` or `invalid`)
 */
export function cryptoImports(native, counter) {
  if (!native) return { verifySignature: () => 'not-available' };
  return {
    verifySignature(alg, key, message, signature) {
      const answer = verifySignature(alg, key, message, signature);
      if (counter !== undefined && answer !== 'not-available') Atomics.add(counter, 0, 1);
      return answer;
    },
  };
}
