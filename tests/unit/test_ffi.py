"""pyvfio._ffi.new: zeroed structs with a sized flexible-array tail and argsz/size filled in."""

from __future__ import annotations

import pytest

from pyvfio._ffi import ffi, new, set_field, sizeof, tail_field


def test_new_sizes_u8_tail_and_fills_argsz() -> None:
    p = new("struct vfio_irq_set *", 4)
    assert p.argsz == 20 + 4
    assert ffi.sizeof(p[0]) == 24
    p.data[3] = 1
    with pytest.raises(IndexError):
        p.data[4] = 1


def test_new_sizes_struct_tail_by_element_size() -> None:
    p = new("struct vfio_pci_hot_reset_info *", 2)
    assert p.argsz == 12 + 2 * 8
    assert ffi.sizeof(p[0]) == 28


def test_new_without_tail_is_the_bare_struct() -> None:
    p = new("struct vfio_irq_set *")
    assert p.argsz == 20
    assert ffi.sizeof(p[0]) == 20


def test_new_fills_iommufd_size() -> None:
    p = new("struct iommu_ioas_alloc *")
    assert p.size == 12
    assert (p.flags, p.out_ioas_id) == (0, 0)


def test_new_leaves_structs_without_argsz_or_size_alone() -> None:
    p = new("struct vfio_iova_range *", start=0x1000, end=0x1FFF)
    assert (p.start, p.end) == (0x1000, 0x1FFF)


def test_new_sets_fields_and_keeps_an_explicit_argsz() -> None:
    p = new("struct vfio_region_info *", index=7)
    assert (p.argsz, p.index, p.size) == (32, 7, 0)
    assert new("struct vfio_irq_set *", 1, argsz=99).argsz == 99


def test_new_accepts_full_range_values() -> None:
    p = new("struct vfio_iommu_type1_dma_map *", iova=2**64 - 1)
    assert p.iova == 2**64 - 1
    assert new("struct vfio_device_ioeventfd *", fd=-1).fd == -1


def test_new_unknown_field_is_valueerror() -> None:
    with pytest.raises(ValueError, match="not_a_field"):
        new("struct vfio_region_info *", not_a_field=1)


@pytest.mark.parametrize(("field", "value"), [("index", 2**32), ("index", -1), ("fd", 2**31)])
def test_new_out_of_range_is_valueerror(field: str, value: int) -> None:
    ctype = "struct vfio_device_ioeventfd *" if field == "fd" else "struct vfio_region_info *"
    with pytest.raises(ValueError, match="out of range"):
        new(ctype, **{field: value})


@pytest.mark.parametrize("value", ["7", 7.0, None, True])
def test_new_non_int_field_is_typeerror(value: object) -> None:
    with pytest.raises(TypeError, match="index"):
        new("struct vfio_region_info *", index=value)  # type: ignore[arg-type]


def test_new_non_integer_field_is_valueerror() -> None:
    with pytest.raises(ValueError, match="not an integer field"):
        new("struct vfio_region_info_cap_type *", header=0)


def test_new_negative_tail_is_valueerror() -> None:
    with pytest.raises(ValueError, match="tail"):
        new("struct vfio_irq_set *", -1)


@pytest.mark.parametrize("tail", ["1", 1.0, True])
def test_new_non_int_tail_is_typeerror(tail: object) -> None:
    with pytest.raises(TypeError, match="tail"):
        new("struct vfio_irq_set *", tail)  # type: ignore[arg-type]


def test_new_tail_on_struct_without_flexible_array_is_valueerror() -> None:
    with pytest.raises(ValueError, match="no flexible-array member"):
        new("struct vfio_region_info *", 1)


@pytest.mark.parametrize("ctype", ["struct no_such_struct *", "struct vfio_irq_set", "uint32_t *"])
def test_new_bad_ctype_is_valueerror(ctype: str) -> None:
    with pytest.raises(ValueError, match="ctype"):
        new(ctype)


def test_new_ctype_not_str_is_typeerror() -> None:
    with pytest.raises(TypeError, match="ctype"):
        new(ffi.typeof("struct vfio_irq_set *"))


def test_tail_field_and_sizeof() -> None:
    assert tail_field("struct vfio_irq_set *") == "data"
    assert tail_field("struct vfio_region_info_cap_sparse_mmap *") == "areas"
    assert tail_field("struct vfio_region_info *") is None
    assert sizeof("struct vfio_region_info_cap_sparse_mmap *") == 16


def test_set_field_checks_like_new() -> None:
    p = new("struct iommu_ioas_map *")
    set_field(p, "flags", 6)
    assert p.flags == 6
    with pytest.raises(ValueError, match="out of range"):
        set_field(p, "flags", 2**32)
