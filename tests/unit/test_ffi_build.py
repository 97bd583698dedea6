"""The generated out-of-line cffi module says exactly what cdefs/ says (no stale build)."""

from __future__ import annotations

import importlib

import pytest

from pyvfio._ffi_build import cdef_source, make_ffi


def _generated():  # type: ignore[no-untyped-def]
    try:
        return importlib.import_module("pyvfio._vfio_cffi").ffi
    except ImportError:
        pytest.skip("pyvfio/_vfio_cffi.py not generated (a source checkout that was never built)")


def _layout(ffi) -> dict[str, object]:  # type: ignore[no-untyped-def]
    _, structs, unions = ffi.list_types()
    layout: dict[str, object] = {}
    for kind, names in (("struct", structs), ("union", unions)):
        for name in names:
            t = ffi.typeof(f"{kind} {name}")
            layout[t.cname] = (ffi.sizeof(t), ffi.alignof(t),
                               [(f, field.offset, field.type.cname) for f, field in t.fields])
    return layout


def test_generated_module_matches_cdefs() -> None:
    generated, parsed = _generated(), make_ffi()
    assert _layout(generated) == _layout(parsed)
    assert generated.list_types() == parsed.list_types()


def test_generated_constants_match_cdefs() -> None:
    generated, parsed = _generated(), make_ffi()
    g, p = generated.dlopen(None), parsed.dlopen(None)
    names = [n for n in dir(p) if n.isupper() or n.startswith("_")]
    assert names, "cdefs declare constants"
    assert {n: getattr(g, n) for n in names if not callable(getattr(p, n))} == {
        n: getattr(p, n) for n in names if not callable(getattr(p, n))
    }


def test_cdef_source_has_every_header() -> None:
    source = cdef_source()
    for name in ("struct vfio_device_info", "struct iommu_ioas_map", "struct vfio_iommu_type1_info",
                 "struct vfio_device_info_cap_zpci_base"):
        assert name in source
