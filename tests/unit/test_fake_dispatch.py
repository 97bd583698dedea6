"""The fake's one ioctl dispatch table: ops, spaces, versions, the call log.

Fake-only: these test the fake's own structure (what its table holds for a Linux version), which a
real kernel has no counterpart of; the behaviour they lead to is in tests/conformance.
"""

from __future__ import annotations

import errno

import pytest

from pyvfio import uapi
from pyvfio._ffi import C, ffi, new
from pyvfio.fake import FakeKernel, standard_host
from pyvfio.fake import ioctls as fioctls
from pyvfio.fake.dispatch import Conv, Op
from pyvfio.fake.linux import DEFAULT, SUPPORTED, Linux
from pyvfio.fake.uaccess import FakeFile
from tests.helpers import expect_errno

KNOWN = uapi.IOCTLS | uapi.TEST_IOCTLS


def _subclasses(cls: type) -> list[type]:
    out = []
    for sub in cls.__subclasses__():
        out += [sub, *_subclasses(sub)]
    return out


def test_every_fake_file_kind_has_a_space() -> None:
    spaces = fioctls.spaces(cdev_config=True)
    for cls in _subclasses(FakeFile):
        if cls.space is FakeFile.space:  # type: ignore[comparison-overlap]
            assert cls.kind in spaces, cls


def test_ops_are_kernel_ioctls_with_sane_sizes() -> None:
    for op in fioctls.ALL_OPS:
        assert KNOWN[op.name] == op.request, op.name
        Linux.parse(op.since)
        if op.conv in (Conv.ARGSZ, Conv.SIZE):
            assert 4 <= op.minsz <= op.sizeof, op.name
        else:
            assert op.ctype is None and op.minsz == 0, op.name


def test_ops_minsz_matches_reference() -> None:
    """The minimum sizes of reference/minsz-6.12.txt (offsetofend of the kernel's last field)."""
    want = {"VFIO_DEVICE_GET_INFO": 16, "VFIO_DEVICE_GET_REGION_INFO": 32,
            "VFIO_DEVICE_GET_IRQ_INFO": 16, "VFIO_DEVICE_SET_IRQS": 20,
            "VFIO_DEVICE_IOEVENTFD": 28, "VFIO_DEVICE_FEATURE": 8, "VFIO_GROUP_GET_STATUS": 8,
            "VFIO_DEVICE_BIND_IOMMUFD": 16, "VFIO_DEVICE_ATTACH_IOMMUFD_PT": 12,
            "VFIO_DEVICE_DETACH_IOMMUFD_PT": 8, "VFIO_IOMMU_GET_INFO": 16,
            "VFIO_IOMMU_MAP_DMA": 32, "VFIO_IOMMU_UNMAP_DMA": 24, "VFIO_IOMMU_DIRTY_PAGES": 8,
            "VFIO_DEVICE_GET_PCI_HOT_RESET_INFO": 12, "VFIO_DEVICE_PCI_HOT_RESET": 12,
            "IOMMU_DESTROY": 8, "IOMMU_IOAS_ALLOC": 12, "IOMMU_IOAS_ALLOW_IOVAS": 24,
            "IOMMU_IOAS_COPY": 40, "IOMMU_IOAS_IOVA_RANGES": 32, "IOMMU_IOAS_MAP": 40,
            "IOMMU_IOAS_UNMAP": 24, "IOMMU_OPTION": 24, "IOMMU_VFIO_IOAS": 12,
            "IOMMU_HWPT_ALLOC": 24, "IOMMU_GET_HW_INFO": 32, "IOMMU_HWPT_SET_DIRTY_TRACKING": 16,
            "IOMMU_HWPT_GET_DIRTY_BITMAP": 48, "IOMMU_HWPT_INVALIDATE": 32,
            "IOMMU_FAULT_QUEUE_ALLOC": 16}
    got = {op.name: op.minsz for op in fioctls.ALL_OPS if op.name in want}
    assert got == want


def test_op_struct_goes_with_argsz_or_size() -> None:
    with pytest.raises(ValueError):
        Op(uapi.VFIO_DEVICE_RESET, "device", lambda t, io: 0, Conv.NONE, "struct vfio_irq_info")
    with pytest.raises(ValueError):
        Op(uapi.VFIO_DEVICE_GET_INFO, "device", lambda t, io: 0, Conv.ARGSZ)


def test_one_handler_per_owner_and_request() -> None:
    dup = Op(uapi.VFIO_DEVICE_RESET, "device", lambda t, io: 0)
    with pytest.raises(ValueError, match="two device handlers"):
        fioctls.IoctlTable([*fioctls.ALL_OPS, dup], fioctls.spaces(cdev_config=True),
                           Linux.parse(DEFAULT))


@pytest.mark.parametrize("linux", SUPPORTED)
def test_table_keeps_the_ioctls_of_its_version(linux: str) -> None:
    kept = {id(op) for op in fioctls.table(Linux.parse(linux))}
    for op in fioctls.ALL_OPS:
        assert (id(op) in kept) == Linux.parse(linux).at_least(op.since), (op.owner, op.name)


def test_linux_default_is_newest_supported() -> None:
    assert FakeKernel().linux == DEFAULT == SUPPORTED[-1]
    assert str(FakeKernel(linux="6.12").linux) == "6.12"
    assert FakeKernel(linux="6.12.117").linux == "6.12"


@pytest.mark.parametrize("bad", ["5.4", "7.4", "six", "6", "٦.١٢"])
def test_linux_outside_the_supported_range_valueerror(bad: str) -> None:
    with pytest.raises(ValueError, match="linux"):
        FakeKernel(linux=bad)


def test_iommufd_calls_record_their_arguments() -> None:
    k = standard_host(iommufd=True)
    fd = k.open("/dev/iommu")
    alloc = new("struct iommu_ioas_alloc *")
    k.ioctl(fd, uapi.IOMMU_IOAS_ALLOC, alloc)
    buf = ffi.new("char[]", 0x2000)
    m = new("struct iommu_ioas_map *", ioas_id=alloc.out_ioas_id, length=0x1000,
            user_va=int(ffi.cast("uintptr_t", buf)), flags=C.IOMMU_IOAS_MAP_READABLE)
    k.ioctl(fd, uapi.IOMMU_IOAS_MAP, m)
    call = k.calls[-1]
    assert call.name == "IOMMU_IOAS_MAP" and call.kind == "iommufd"
    assert call.args["ioas_id"] == alloc.out_ioas_id and call.args["length"] == 0x1000
    assert call.args["iova"] == 0  # what the caller passed, not the IOVA written back
    assert m.iova != 0
    k.close(fd)
    k.assert_clean()


def test_unknown_request_is_named_in_the_error() -> None:
    k = standard_host(iommufd=True)
    fd = k.open("/dev/vfio/vfio")
    err = expect_errno(errno.EINVAL, k.ioctl, fd, 0x3B7F)
    assert err.filename == "ioctl 0x3b7f" and k.calls[-1].errno == errno.EINVAL
    k.close(fd)


def test_request_beyond_64_bits_overflowerror() -> None:
    k = standard_host()
    with pytest.raises(OverflowError):
        k.ioctl(10001, 1 << 64)
