"""JSON text exactly as `serde_json::to_string` writes it.

The Rust core prints decisions with serde_json (compact, insertion order).
Python's `json.dumps` agrees on strings and integers but not on every float
(`1e-05` against `0.00001`, `1e+16` against `1e16`) nor on integers beyond
64 bits, which serde_json reads as floats. This module closes those gaps so
`Decision.to_json()` is byte-identical to the Rust host's.
"""

from __future__ import annotations

import json
import math
from typing import Any

_U64_MAX = 2**64 - 1
_I64_MIN = -(2**63)


def dumps(value: Any) -> str:
    """Serialise `value` (dicts, lists, tuples, str, int, float, bool, None)
    as compact JSON in serde_json's exact format."""
    out: list[str] = []
    _write(value, out)
    return "".join(out)


def _write(v: Any, out: list[str]) -> None:
    if v is None:
        out.append("null")
    elif v is True:
        out.append("true")
    elif v is False:
        out.append("false")
    elif isinstance(v, str):
        out.append(json.dumps(v, ensure_ascii=False))
    elif isinstance(v, int):
        # serde_json keeps integers that fit i64 or u64 and reads any other
        # integer literal as an f64.
        out.append(str(v) if _I64_MIN <= v <= _U64_MAX else _float(float(v)))
    elif isinstance(v, float):
        out.append(_float(v))
    elif isinstance(v, dict):
        out.append("{")
        for i, (k, item) in enumerate(v.items()):
            if i:
                out.append(",")
            out.append(json.dumps(str(k), ensure_ascii=False))
            out.append(":")
            _write(item, out)
        out.append("}")
    elif isinstance(v, (list, tuple)):
        out.append("[")
        for i, item in enumerate(v):
            if i:
                out.append(",")
            _write(item, out)
        out.append("]")
    else:
        raise TypeError(f"cannot serialise a {type(v).__name__} as JSON")


def _float(f: float) -> str:
    """An f64 as ryu (serde_json's float printer) writes it."""
    if not math.isfinite(f):
        # serde_json writes non-finite floats as null.
        return "null"
    if f == 0.0:
        return "-0.0" if math.copysign(1.0, f) < 0 else "0.0"
    sign = "-" if f < 0 else ""
    # repr gives the shortest round-tripping digits, as ryu does.
    mantissa, _, exp = repr(abs(f)).partition("e")
    whole, _, frac = mantissa.partition(".")
    digits = (whole + frac).lstrip("0")
    # The value is 0.DIGITS * 10**point.
    point = len(whole.lstrip("0")) if whole.strip("0") else -(len(frac) - len(frac.lstrip("0")))
    if exp:
        point += int(exp)
    digits = digits.rstrip("0") or "0"
    length = len(digits)
    if 0 <= point - length and point <= 16:
        return f"{sign}{digits}{'0' * (point - length)}.0"
    if 0 < point <= 16:
        return f"{sign}{digits[:point]}.{digits[point:]}"
    if -5 < point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    rest = f".{digits[1:]}" if length > 1 else ""
    return f"{sign}{digits[0]}{rest}e{point - 1}"
