"""Calls into the component without re-reading its types on every call.

wasmtime-py (the version pinned in requirements.txt) asks the component for a
function's parameter and result types on every call, and every record,
variant, list and option value it converts asks again for its fields or
cases: for one decision that is about seventy type objects built through
ctypes and dropped, which was most of a call's cost (BENCHMARKS.md, "The
Python host"). An export's types never change for a compiled component, so
`Signature` reads them once, freezes the answers into the type objects, and
`call` calls the function with them; `add_func` does the same for a
function the host gives the component (wasmtime-py's own wrapper reads the
types on every call the component makes). Values are converted by
wasmtime-py's own code, unchanged: both sides see exactly the values they
saw before.

This reaches into wasmtime-py's internals (`_ffi`, the type classes'
structure): tests/test_calls.py fails first if a new wasmtime-py moves them.
"""

from __future__ import annotations

import ctypes
import itertools
import threading
from typing import Any, Callable, Optional

from wasmtime import WasmtimeError
from wasmtime import _ffi as ffi
from wasmtime.component import _types as types
from wasmtime.component._enter import catch_exceptions, enter_wasm

#: The properties of each kind of type that wasmtime-py reads back from the
#: component whenever it converts a value of that type.
_STRUCTURE: dict[type, tuple[str, ...]] = {
    types.ListType: ("element",),
    types.RecordType: ("fields",),
    types.TupleType: ("elements",),
    types.VariantType: ("cases",),
    types.EnumType: ("names",),
    types.OptionType: ("payload",),
    types.ResultType: ("ok", "err"),
    types.FlagsType: ("names",),
}


def _frozen(ty: Any) -> Any:
    """`ty`, with the properties `_STRUCTURE` names (and those of every type
    inside it) read once and kept: its class is swapped for a subclass that
    holds the answers as plain attributes. Primitive types, strings and
    resource handles read nothing back and are returned as they are."""
    props = _STRUCTURE.get(type(ty))
    if props is None:
        return ty
    answers = {name: _frozen_value(getattr(ty, name)) for name in props}
    ty.__class__ = type(f"Frozen{type(ty).__name__}", (type(ty),), answers)
    if isinstance(ty, types.VariantLikeType):
        # Whether values carry their case name is decided from the cases'
        # Python classes: the same answer every time.
        tagged = ty._tagged()
        ty.__class__._tagged = lambda _self: tagged
    return ty


def _frozen_value(value: Any) -> Any:
    """A property's answer with every type in it frozen: a type, `None`, a
    name, or a list of types, names or (name, type-or-None) pairs."""
    if isinstance(value, list):
        return [_frozen_value(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_frozen_value(v) for v in value)
    if isinstance(value, types.ValType):
        return _frozen(value)
    return value


class Signature:
    """An export's parameter and result types, read from the component once
    (through any instance of it) and frozen."""

    def __init__(self, func: Any, store: Any):
        fty = func.type(store)
        #: Kept alive: the types below were read through it.
        self._fty = fty
        self.params = [_frozen(ty) for _, ty in fty.params]
        result = fty.result
        self.result: Optional[Any] = None if result is None else _frozen(result)


class Signatures:
    """The signatures of a component's exports, by export name, read the
    first time each is called (by whichever thread comes first)."""

    def __init__(self) -> None:
        self._by_name: dict[str, Signature] = {}
        self._lock = threading.Lock()

    def get(self, name: str, func: Any, store: Any) -> Signature:
        sig = self._by_name.get(name)
        if sig is None:
            with self._lock:
                sig = self._by_name.get(name)
                if sig is None:
                    sig = Signature(func, store)
                    self._by_name[name] = sig
        return sig


def call(func: Any, store: Any, sig: Signature, args: tuple[Any, ...]) -> Any:
    """Calls the component function `func` in `store` with `args`, lowered
    and its result lifted through `sig`'s types; raises what wasmtime-py's
    own call raises (`WasmtimeError` for a trap, `TypeError` or
    `ValueError` for an argument that does not fit)."""
    count = len(sig.params)
    if len(args) != count:
        raise TypeError(f"wrong number of parameters provided: given {len(args)}, expected {count}")
    values = (ffi.wasmtime_component_val_t * count)()
    lowered = 0
    try:
        for ty, arg in zip(sig.params, args):
            ty.convert_to_c(store, arg, ctypes.pointer(values[lowered]))
            lowered += 1
        result = ffi.wasmtime_component_val_t()
        wanted = sig.result is not None
        enter_wasm(lambda: ffi.wasmtime_component_func_call(
            ctypes.byref(func._func), store._context(), values, count,
            ctypes.byref(result) if wanted else None, 1 if wanted else 0))
        return sig.result.convert_from_c(result) if wanted else None
    finally:
        for i in range(lowered):
            ffi.wasmtime_component_val_delete(ctypes.byref(values[i]))


#: Host functions given to components by `add_func`: id -> (function, its
#: frozen (params, result) once the component first called it).
_HOST_FUNCS: dict[int, list[Any]] = {}
_host_ids = itertools.count(1)


@ffi.wasmtime_component_func_callback_t
def _host_call(idx, context, ty_raw, args, nargs, results, nresults):  # type: ignore[no-untyped-def]
    def run(store: Any) -> None:
        # Inside `run`: whatever fails here traps the component's call.
        entry = _HOST_FUNCS[idx or 0]
        func, frozen = entry
        if frozen is None:
            # `ty_raw` lives for this call only; the types read through it
            # are copies the frozen ones own.
            fty = types.FuncType._from_ptr(ty_raw, owner=store)
            frozen = ([_frozen(ty) for _, ty in fty.params],
                      None if fty.result is None else _frozen(fty.result))
            entry[1] = frozen
        params, result_ty = frozen
        if len(params) != nargs or (result_ty is None) != (nresults == 0):
            raise WasmtimeError("a host function was called with another signature")
        answer = func(store, *(ty.convert_from_c(args[i]) for i, ty in enumerate(params)))
        if result_ty is not None:
            result_ty.convert_to_c(store, answer, results)

    return catch_exceptions(context, run)


@ctypes.CFUNCTYPE(None, ctypes.c_void_p)
def _host_finalize(idx):  # type: ignore[no-untyped-def]
    if _HOST_FUNCS:  # at interpreter shutdown the table may be gone
        _HOST_FUNCS.pop(idx or 0, None)


def add_func(instance: Any, name: str, func: Callable[..., Any]) -> None:
    """Gives the component `func` as `name` of the linker instance
    `instance` (a `wasmtime.component.LinkerInstance`), called as
    wasmtime-py's `add_func` calls it (`func(store, *args)`), with its types
    read once. An exception in `func` traps the component's call.

    The types are read from the first component that calls it and kept, so
    the linker must instantiate one component only (each `Engine` has its
    own linker for its one component)."""
    idx = next(_host_ids)
    _HOST_FUNCS[idx] = [func, None]
    raw = name.encode("utf-8")
    err = ffi.wasmtime_component_linker_instance_add_func(
        instance.ptr(), ctypes.create_string_buffer(raw), len(raw), _host_call, idx, _host_finalize)
    if err:
        _HOST_FUNCS.pop(idx, None)
        raise WasmtimeError._from_ptr(err)
