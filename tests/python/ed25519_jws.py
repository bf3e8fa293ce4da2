"""Ed25519 JWS signing for the Python tests, with no crypto package: RFC
8032 §5.1.6 after its §6 reference code, and the seed of tests/keys/ed.pem
(the EdDSA key of the test bundles' `ed-1`)."""

import base64
import hashlib
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_P = 2**255 - 19
_L = 2**252 + 27742317777372353535851937790883648493
_D = -121665 * pow(121666, -1, _P) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)


def _recover_x(y: int, sign: int) -> int:
    x2 = (y * y - 1) * pow(_D * y * y + 1, -1, _P)
    x = pow(x2, (_P + 3) // 8, _P)
    if (x * x - x2) % _P:
        x = x * _SQRT_M1 % _P
    return _P - x if x & 1 != sign else x


_GY = 4 * pow(5, -1, _P) % _P
_GX = _recover_x(_GY, 0)
_BASE = (_GX, _GY, 1, _GX * _GY % _P)


def _add(a, b):
    e1, h1 = (a[1] - a[0]) * (b[1] - b[0]) % _P, (a[1] + a[0]) * (b[1] + b[0]) % _P
    c, d = 2 * a[3] * b[3] * _D % _P, 2 * a[2] * b[2] % _P
    e, f, g, h = h1 - e1, d - c, d + c, h1 + e1
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def _mul(s: int, p):
    q = (0, 1, 1, 0)
    while s:
        if s & 1:
            q = _add(q, p)
        p, s = _add(p, p), s >> 1
    return q


def _compress(p) -> bytes:
    zi = pow(p[2], -1, _P)
    x, y = p[0] * zi % _P, p[1] * zi % _P
    return (y | (x & 1) << 255).to_bytes(32, "little")


def _expand(seed: bytes):
    h = hashlib.sha512(seed).digest()
    return int.from_bytes(h[:32], "little") & ((1 << 254) - 8) | (1 << 254), h[32:]


def ed25519_public(seed: bytes) -> bytes:
    return _compress(_mul(_expand(seed)[0], _BASE))


def ed25519_sign(seed: bytes, message: bytes) -> bytes:
    a, prefix = _expand(seed)
    public = _compress(_mul(a, _BASE))
    r = int.from_bytes(hashlib.sha512(prefix + message).digest(), "little") % _L
    big_r = _compress(_mul(r, _BASE))
    k = int.from_bytes(hashlib.sha512(big_r + public + message).digest(), "little") % _L
    return big_r + ((r + k * a) % _L).to_bytes(32, "little")


def b64u(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def _seed() -> bytes:
    """The 32-byte seed of tests/keys/ed.pem (PKCS #8: the last 32 bytes)."""
    pem = (ROOT / "tests/keys/ed.pem").read_text(encoding="utf-8")
    return base64.b64decode("".join(line for line in pem.splitlines() if not line.startswith("-----")))[-32:]


SEED = _seed()


def signed(header: dict, body: dict) -> str:
    """A compact JWS of `body` under `header`, signed with `SEED`."""
    signing_input = f"{b64u(json.dumps(header).encode())}.{b64u(json.dumps(body).encode())}"
    return f"{signing_input}.{b64u(ed25519_sign(SEED, signing_input.encode()))}"
