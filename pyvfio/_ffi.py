"""The cffi FFI of the kernel uAPI, and helpers to allocate its structs.

No cdata leaves the object layer: these helpers are for pyvfio's own modules and for the fake kernel.
"""

from __future__ import annotations

from typing import Any

try:
    from pyvfio._vfio_cffi import ffi as ffi  # generated at build time (out-of-line ABI mode)
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
    try:
        t = ffi.typeof(ctype)
    except ffi.error as exc:
        raise ValueError(f"ctype: unknown C type {ctype!r}") from exc
    if t.kind != "pointer" or t.item.kind != "struct":
        raise ValueError(f"ctype must be a pointer to a struct, not {ctype!r}")
    if t.item.fields is None:  # an undeclared `struct x *` is a pointer to an opaque struct
        raise ValueError(f"ctype: {t.item.cname} is not declared in cdefs/")
    return t


def tail_field(ctype: str) -> str | None:
    """Return the name of the flexible-array member of ``ctype``'s struct, or None."""
    fields = _struct_type(ctype).item.fields
    if fields:
        name, field = fields[-1]
        if field.type.kind == "array" and field.type.length is None:
            return str(name)
    return None


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
    if not isinstance(tail, int) or isinstance(tail, bool):
        raise TypeError(f"tail must be an int, not {type(tail).__name__}")
    if tail < 0:
        raise ValueError(f"tail must be >= 0, not {tail}")
    flex = tail_field(ctype)
    if tail and flex is None:
        raise ValueError(f"tail: {t.item.cname} has no flexible-array member")
    p = ffi.new(ctype, {flex: tail}) if flex else ffi.new(ctype)
    names = {name for name, _ in t.item.fields}
    total = ffi.sizeof(t.item) + (tail * ffi.sizeof(dict(t.item.fields)[flex].type.item) if flex else 0)
    for size_field in ("argsz", "size"):
        if size_field in names and size_field not in fields:
            setattr(p, size_field, total)
            break
    for name, value in fields.items():
        set_field(p, name, value)
    return p


def set_field(p: CData, name: str, value: int) -> None:
    """Set integer field ``name`` of struct ``p``, checking the name and the field's range.

    Raises:
        TypeError: ``value`` is not an int.
        ValueError: ``name`` is not a field of the struct, or ``value`` does not fit.
    """
    st = ffi.typeof(p).item
    fields = dict(st.fields)
    if name not in fields:
        raise ValueError(f"{name!r} is not a field of {st.cname}")
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if fields[name].type.kind not in ("primitive", "enum"):
        raise ValueError(f"{name} of {st.cname} is not an integer field")
    try:
        setattr(p, name, value)
    except OverflowError as exc:
        raise ValueError(f"{name} of {st.cname}: {value} is out of range") from exc


def sizeof(ctype: str) -> int:
    """Return ``sizeof`` of the struct that ``ctype`` points to (without any tail)."""
    return int(ffi.sizeof(_struct_type(ctype).item))
