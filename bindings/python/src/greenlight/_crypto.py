"""The `crypto` import (WIT `greenlight:approval/crypto`): signature checks
with `cryptography` (OpenSSL), at native speed.

The policy module decides everything about a token but this one step: is
this signature over this message valid under this public key? (The WIT
interface says why that keeps the sandbox's promise.) What this module
cannot check exactly as the policy module would (a key OpenSSL refuses to
build, an algorithm it is not asked about) it answers `not-available`, and
the policy module checks the signature itself: the same verdict, slower."""

from typing import Any

try:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils

    _HASHES: dict = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}
    AVAILABLE = True
except ImportError:  # pragma: no cover - a dependency of the package
    AVAILABLE = False

VALID = "valid"
INVALID = "invalid"
NOT_AVAILABLE = "not-available"

_CURVES = {"ES256": (65, "256"), "ES384": (97, "384")}


def _public(alg: str, key: Any) -> Any:
    """The `cryptography` public key for `key` (a WIT `public-key`), or
    None when this algorithm and key are not ours to check."""
    tag, payload = key.tag, key.payload
    if alg[:2] in ("RS", "PS") and tag == "rsa":
        n = int.from_bytes(bytes(payload.n), "big")
        e = int.from_bytes(bytes(payload.e), "big")
        # As the Rust host: 2048 to 4096 bits (the module refuses larger
        # keys, ring smaller ones), odd, an exponent from 3 to 2^33 - 1.
        if not (2048 <= n.bit_length() <= 4096 and n % 2 == 1 and e % 2 == 1 and 3 <= e < 1 << 33):
            return None
        return rsa.RSAPublicNumbers(e, n).public_key()
    if alg in _CURVES and tag == "ec":
        length, bits = _CURVES[alg]
        point = bytes(payload)
        if len(point) != length:
            return None
        curve = ec.SECP256R1() if bits == "256" else ec.SECP384R1()
        return ec.EllipticCurvePublicKey.from_encoded_point(curve, point)
    if alg == "EdDSA" and tag == "ed25519":
        return ed25519.Ed25519PublicKey.from_public_bytes(bytes(payload))
    return None


def verify(alg: str, key: Any, message: bytes, signature: bytes) -> str:
    """Checks `signature` over `message` with `key` for the JOSE algorithm
    `alg`: `valid`, `invalid` or `not-available`."""
    if not AVAILABLE:
        return NOT_AVAILABLE
    try:
        public = _public(alg, key)
    except (ValueError, TypeError, OverflowError):
        # A key OpenSSL will not build (an invalid point, say): the policy
        # module says what is wrong with it.
        return NOT_AVAILABLE
    if public is None:
        return NOT_AVAILABLE
    message, signature = bytes(message), bytes(signature)
    try:
        if alg == "EdDSA":
            public.verify(signature, message)
        elif alg[:2] == "ES":
            half = len(signature) // 2
            der = utils.encode_dss_signature(
                int.from_bytes(signature[:half], "big"), int.from_bytes(signature[half:], "big"))
            public.verify(der, message, ec.ECDSA(_HASHES[alg[2:]]()))
        elif alg[:2] == "RS":
            public.verify(signature, message, padding.PKCS1v15(), _HASHES[alg[2:]]())
        else:
            digest = _HASHES[alg[2:]]()
            pss = padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size)
            public.verify(signature, message, pss, digest)
    except InvalidSignature:
        return INVALID
    except (ValueError, TypeError, KeyError):
        return NOT_AVAILABLE
    return VALID
