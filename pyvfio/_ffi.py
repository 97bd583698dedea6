"""The cffi FFI of the kernel uAPI, and helpers to allocate its structs.

No cdata leaves the object layer: these helpers are for pyvfio's own modules and for the fake
kernel.
"""

from __future__ import annotations

import functools
from typing import Any

try:
    # generated at build time (out-of-line ABI mode); "as ffi" re-exports it for mypy --strict
    from pyvfio._vfio_cffi import ffi as ffi  # noqa: PLC0414
except ImportError:  # a source checkout that was never built: parse cdefs/ in-line (slower import)
    from pyvfio._ffi_build import make_ffi

    ffi = make_ffi()

CData = Any
"""A cffi cdata object (``struct vfio_device_info *`` and the like)."""

C = ffi.dlopen(None)
"""The C library and every integer constant of cdefs/ (``C.VFIO_API_VERSION``, ``C.ioctl``)."""

def _struct_type(ctype: str) -> Any:
    if not isinstance(ctype, str):
        raise TypeError(f"ctype must be a str naming a struct, not {type(ctype).__name__}")
    return _layout(ctype)[0]


@functools.cache
def _layout(ctype: str) -> tuple[Any, str | None, int, dict[str, str]]:
    """``(type, flexible-array member, its element size, {field: kind})`` of a struct pointer
    type, computed once per type: :func:`new` runs for every ioctl (tools/bench part 2)."""
    try:
        t = ffi.typeof(ctype)
    except ffi.error as exc:
        raise ValueError(f"ctype: unknown C type {ctype!r}") from exc
    if t.kind != "pointer" or t.item.kind != "struct":
        raise ValueError(f"ctype must be a pointer to a struct, not {ctype!r}")
    if t.item.fields is None:  # an undeclared `struct x *` is a pointer to an opaque struct
        raise ValueError(f"ctype: {t.item.cname} is not declared in cdefs/")
    flex, elem = None, 0
    if t.item.fields:
        name, field = t.item.fields[-1]
        if field.type.kind == "array" and field.type.length is None:
            flex, elem = str(name), ffi.sizeof(field.type.item)
    return t, flex, elem, _kinds(t.item)


_KINDS: dict[Any, dict[str, str]] = {}


def _kinds(st: Any) -> dict[str, str]:
    kinds = _KINDS.get(st)
    if kinds is None:
        kinds = _KINDS[st] = {str(name): f.type.kind for name, f in st.fields}
    return kinds


def tail_field(ctype: str) -> str | None:
    """Return the name of the flexible-array member of ``ctype``'s struct, or None."""
    _struct_type(ctype)
    return _layout(ctype)[1]


def new(ctype: str, tail: int = 0, **fields: int) -> CData:
    """Allocate a zeroed struct, size its flexible-array tail, and fill ``argsz``/``size``.

    Args:
        ctype: a pointer type such as ``"struct vfio_irq_set *"``.
        tail: number of elements of the flexible-array member (0 when there is none).
        **fields: integer values for named top-level fields.

    Returns:
        The cdata; ``argsz`` (VFIO) or ``size`` (iommufd) holds the whole allocation's size,
        tail included, unless given in ``fields``.

    Raises:
        TypeError: ``tail`` or a field value is not an int.
        ValueError: unknown struct or field name, negative ``tail``, a tail on a struct without
            one, or a value outside a field's range.
    """
    t = _struct_type(ctype)
    _, flex, elem, kinds = _layout(ctype)
    if not isinstance(tail, int) or isinstance(tail, bool):
        raise TypeError(f"tail must be an int, not {type(tail).__name__}")
    if tail < 0:
        raise ValueError(f"tail must be >= 0, not {tail}")
    if tail and flex is None:
        raise ValueError(f"tail: {t.item.cname} has no flexible-array member")
    p = ffi.new(ctype, {flex: tail}) if flex else ffi.new(ctype)
    total = ffi.sizeof(t.item) + tail * elem
    for size_field in ("argsz", "size"):
        if size_field in kinds and size_field not in fields:
            setattr(p, size_field, total)
            break
    for name, value in fields.items():
        _set(p, t.item, kinds, name, value)
    return p


def set_field(p: CData, name: str, value: int) -> None:
    """Set integer field ``name`` of struct ``p``, checking the name and the field's range.

    Raises:
        TypeError: ``value`` is not an int.
        ValueError: ``name`` is not a field of the struct, or ``value`` does not fit.
    """
    st = ffi.typeof(p).item
    _set(p, st, _kinds(st), name, value)


def _set(p: CData, st: Any, kinds: dict[str, str], name: str, value: int) -> None:
    kind = kinds.get(name)
    if kind is None:
        raise ValueError(f"{name!r} is not a field of {st.cname}")
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if kind not in ("primitive", "enum"):
        raise ValueError(f"{name} of {st.cname} is not an integer field")
    try:
        setattr(p, name, value)
    except OverflowError as exc:
        raise ValueError(f"{name} of {st.cname}: {value} is out of range") from exc


def sizeof(ctype: str) -> int:
    """Return ``sizeof`` of the struct that ``ctype`` points to (without any tail)."""
    return int(ffi.sizeof(_struct_type(ctype).item))
