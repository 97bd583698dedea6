"""/dev/iommu: the size convention, object ids, destroy, options, the VFIO-compat IOAS.

Specification: tools/testing/selftests/iommu/iommufd.c (fixture ``iommufd``) and
drivers/iommu/iommufd/main.c, ioas.c, vfio_compat.c.
"""

from __future__ import annotations

import errno
import os
import struct
from typing import Any

import pytest

from pyvfio import uapi
from pyvfio._ffi import C, ffi, new
from tests.conformance.iommufd_helpers import iommufd_session
from tests.conftest import Host
from tests.helpers import expect_errno, expect_ok

# (ioctl, struct, last field of the minimum size), as in iommufd.c:cmd_length
LENGTHS = [
    (uapi.IOMMU_DESTROY, "iommu_destroy", "id"),
    (uapi.IOMMU_GET_HW_INFO, "iommu_hw_info", "__reserved"),
    (uapi.IOMMU_HWPT_ALLOC, "iommu_hwpt_alloc", "__reserved"),
    (uapi.IOMMU_IOAS_ALLOC, "iommu_ioas_alloc", "out_ioas_id"),
    (uapi.IOMMU_IOAS_IOVA_RANGES, "iommu_ioas_iova_ranges", "out_iova_alignment"),
    (uapi.IOMMU_IOAS_ALLOW_IOVAS, "iommu_ioas_allow_iovas", "allowed_iovas"),
    (uapi.IOMMU_IOAS_MAP, "iommu_ioas_map", "iova"),
    (uapi.IOMMU_IOAS_COPY, "iommu_ioas_copy", "src_iova"),
    (uapi.IOMMU_IOAS_UNMAP, "iommu_ioas_unmap", "length"),
    (uapi.IOMMU_OPTION, "iommu_option", "val64"),
    (uapi.IOMMU_VFIO_IOAS, "iommu_vfio_ioas", "__reserved"),
]


def _padded(struct: str, size: int, extra: int) -> object:
    """The struct followed by one extra byte, ``size`` set as given (cmd_length's layout)."""
    full = ffi.sizeof(f"struct {struct}")
    buf = ffi.new("uint8_t[]", full + 8)
    buf[full] = extra
    ffi.cast("uint32_t *", buf)[0] = size
    return buf


def _min_size(struct: str, last: str) -> int:
    t = ffi.typeof(f"struct {struct}")
    return int(ffi.offsetof(t, last) + ffi.sizeof(dict(t.fields)[last].type))


def test_destroy_id_zero_enoent(host: Host) -> None:
    """iommufd.c:cmd_fail: IOMMU_DESTROY of id 0 (never allocated) -> ENOENT."""
    with iommufd_session(host) as s:
        fd = s.iommufd()
        expect_errno(errno.ENOENT, s.destroy, fd, 0)


def test_null_argument_efault(host: Host) -> None:
    """iommufd.c:cmd_fail: a NULL argument -> EFAULT (main.c:iommufd_fops_ioctl get_user)."""
    with iommufd_session(host) as s:
        fd = s.iommufd()
        expect_errno(errno.EFAULT, s.k.ioctl, fd, uapi.IOMMU_DESTROY, 0)


def test_unknown_ioctl_enotty(host: Host) -> None:
    """iommufd.c:cmd_fail: _IO(';', IOMMUFD_CMD_BASE - 1) -> ENOTTY."""
    with iommufd_session(host) as s:
        fd = s.iommufd()
        request = uapi.Ioctl("IOMMUFD_CMD_BASE-1", C.IOMMUFD_CMD_BASE - 1)
        arg = new("struct iommu_destroy *")
        expect_errno(errno.ENOTTY, s.k.ioctl, fd, request, arg)


@pytest.mark.parametrize(("request_", "struct", "last"), LENGTHS, ids=[x[1] for x in LENGTHS])
def test_size_below_minimum_einval(host: Host, request_: int, struct: str, last: str) -> None:
    """iommufd.c:cmd_length: size = offsetofend(last) - 1 -> EINVAL (main.c min_size)."""
    with iommufd_session(host) as s:
        fd = s.iommufd()
        arg = _padded(struct, _min_size(struct, last) - 1, 0xFF)
        expect_errno(errno.EINVAL, s.k.ioctl, fd, request_, arg)


@pytest.mark.parametrize(("request_", "struct", "last"), LENGTHS, ids=[x[1] for x in LENGTHS])
def test_nonzero_tail_e2big(host: Host, request_: int, struct: str, last: str) -> None:
    """iommufd.c:cmd_length: size = sizeof + 1 with a non-zero extra byte -> E2BIG."""
    with iommufd_session(host) as s:
        fd = s.iommufd()
        arg = _padded(struct, ffi.sizeof(f"struct {struct}") + 1, 0xFF)
        expect_errno(errno.E2BIG, s.k.ioctl, fd, request_, arg)


def test_longer_struct_with_zero_tail_accepted(host: Host) -> None:
    """iommufd.c:cmd_ex_fail: a longer command with a zero tail is read as the known struct."""
    with iommufd_session(host) as s:
        fd = s.iommufd()
        arg = _padded("iommu_destroy", 16, 0)
        expect_errno(errno.ENOENT, s.k.ioctl, fd, uapi.IOMMU_DESTROY, arg)  # id 0: ENOENT


def test_ids_start_at_one_and_reuse_lowest(host: Host) -> None:
    """main.c:_iommufd_object_alloc: xa_alloc (ALLOC1) gives the lowest free id >= 1."""
    with iommufd_session(host) as s:
        fd = s.iommufd()
        first, second = s.ioas(fd), s.ioas(fd)
        assert (first, second) == (1, 2)
        s.destroy(fd, first)
        assert s.ioas(fd) == first


def test_ioas_alloc_flags_eopnotsupp(host: Host) -> None:
    """ioas.c:iommufd_ioas_alloc_ioctl: flags != 0 -> EOPNOTSUPP."""
    with iommufd_session(host) as s:
        fd = s.iommufd()
        arg = new("struct iommu_ioas_alloc *", flags=1)
        expect_errno(errno.EOPNOTSUPP, s.k.ioctl, fd, uapi.IOMMU_IOAS_ALLOC, arg)


def test_destroy_ioas_then_enoent(host: Host) -> None:
    """iommufd.c:ioas_destroy (no_domain): an IOAS is destroyed once; then its id is ENOENT."""
    with iommufd_session(host) as s:
        fd = s.iommufd()
        ioas = s.ioas(fd)
        expect_ok(s.destroy, fd, ioas)
        expect_errno(errno.ENOENT, s.destroy, fd, ioas)


def _option(s: object, fd: int, option: int, op: int, obj: int = 0, val: int = 0,
            **extra: int) -> int:
    arg = new("struct iommu_option *", option_id=option, op=op, object_id=obj, val64=val, **extra)
    s.k.ioctl(fd, uapi.IOMMU_OPTION, arg)  # type: ignore[attr-defined]
    return int(arg.val64)


def test_rlimit_mode_get_default_user(host: Host) -> None:
    """iommufd.c:global_options: RLIMIT_MODE GET on a fresh /dev/iommu is 0 (per user)."""
    with iommufd_session(host) as s:
        fd = s.iommufd()
        assert _option(s, fd, C.IOMMU_OPTION_RLIMIT_MODE, C.IOMMU_OPTION_OP_GET, val=1) == 0


def test_rlimit_mode_set_and_bad_value(host: Host) -> None:
    """iommufd.c:global_options: SET 1 works (root), SET 2 -> EINVAL, GET then reads 1."""
    with iommufd_session(host) as s:
        fd = s.iommufd()
        expect_ok(_option, s, fd, C.IOMMU_OPTION_RLIMIT_MODE, C.IOMMU_OPTION_OP_SET, val=1)
        expect_errno(errno.EINVAL, _option, s, fd, C.IOMMU_OPTION_RLIMIT_MODE,
                     C.IOMMU_OPTION_OP_SET, val=2)
        assert _option(s, fd, C.IOMMU_OPTION_RLIMIT_MODE, C.IOMMU_OPTION_OP_GET) == 1


def test_rlimit_mode_set_with_objects_ebusy(host: Host) -> None:
    """ioas.c:iommufd_option_rlimit_mode: SET while objects exist -> EBUSY."""
    with iommufd_session(host) as s:
        fd = s.iommufd()
        s.ioas(fd)
        expect_errno(errno.EBUSY, _option, s, fd, C.IOMMU_OPTION_RLIMIT_MODE,
                     C.IOMMU_OPTION_OP_SET, val=1)


def test_rlimit_mode_object_id_eopnotsupp(host: Host) -> None:
    """ioas.c:iommufd_option_rlimit_mode: a global option with an object id -> EOPNOTSUPP."""
    with iommufd_session(host) as s:
        fd = s.iommufd()
        expect_errno(errno.EOPNOTSUPP, _option, s, fd, C.IOMMU_OPTION_RLIMIT_MODE,
                     C.IOMMU_OPTION_OP_GET, obj=1)


def test_huge_pages_without_ioas_enoent(host: Host) -> None:
    """iommufd.c:global_options: HUGE_PAGES on object 0 -> ENOENT (GET and SET)."""
    with iommufd_session(host) as s:
        fd = s.iommufd()
        for op in (C.IOMMU_OPTION_OP_GET, C.IOMMU_OPTION_OP_SET):
            expect_errno(errno.ENOENT, _option, s, fd, C.IOMMU_OPTION_HUGE_PAGES, op)


def test_option_reserved_eopnotsupp(host: Host) -> None:
    """main.c:iommufd_option: __reserved != 0 -> EOPNOTSUPP."""
    with iommufd_session(host) as s:
        fd = s.iommufd()
        expect_errno(errno.EOPNOTSUPP, _option, s, fd, C.IOMMU_OPTION_RLIMIT_MODE,
                     C.IOMMU_OPTION_OP_GET, __reserved=1)


def test_option_unknown_eopnotsupp(host: Host) -> None:
    """ioas.c:iommufd_ioas_option: an unknown option id on an IOAS -> EOPNOTSUPP."""
    with iommufd_session(host) as s:
        fd = s.iommufd()
        ioas = s.ioas(fd)
        expect_errno(errno.EOPNOTSUPP, _option, s, fd, 99, C.IOMMU_OPTION_OP_GET, obj=ioas)


def test_option_unknown_before_object_lookup(host: Host) -> None:
    """main.c:iommufd_option: an unknown option id -> EOPNOTSUPP from the switch, before any
    object lookup (a missing object id does not make it ENOENT)."""
    with iommufd_session(host) as s:
        fd = s.iommufd()
        for obj in (0, 1, 0x7fffffff):
            expect_errno(errno.EOPNOTSUPP, _option, s, fd, 2, C.IOMMU_OPTION_OP_GET, obj=obj)
            expect_errno(errno.EOPNOTSUPP, _option, s, fd, 2, C.IOMMU_OPTION_OP_SET, obj=obj)


def test_mmap_of_iommufd_by_version(host: Host) -> None:
    """mmap of /dev/iommu where nothing is offered: 6.12's iommufd_fops has no mmap, so do_mmap
    answers ENODEV; 7.3's iommufd_fops_mmap finds no region at the offset -> ENXIO (an unaligned
    length reaches it rounded up to whole pages: ENXIO too, not its own EINVAL); length 0 is
    do_mmap's EINVAL on both."""
    with iommufd_session(host) as s:
        fd = s.iommufd()
        want = errno.ENXIO if host.linux_at_least(7, 3) else errno.ENODEV
        for length, offset in ((4096, 0), (1 << 20, 6 << 40), (2048, 4096)):
            expect_errno(want, s.k.mmap, fd, length, offset)
        expect_errno(errno.EINVAL, s.k.mmap, fd, 0, 0)


def _dma_buf(host: Host, s: Any, cdev: int, nr_ranges: int = 1,
             open_flags: int = os.O_RDWR) -> int:
    """VFIO_DEVICE_FEATURE_DMA_BUF of BAR0's first page; skips before Linux 6.19."""
    arg = ffi.new("uint8_t[40]")
    struct.pack_into("<IIIIIIQQ", ffi.buffer(arg), 0, 40,
                     C.VFIO_DEVICE_FEATURE_GET | C.VFIO_DEVICE_FEATURE_DMA_BUF, 0, open_flags,
                     0, nr_ranges, 0, 4096)
    try:
        return s.track(s.k.ioctl(cdev, uapi.VFIO_DEVICE_FEATURE, arg))  # type: ignore[no-any-return]
    except OSError as exc:
        if exc.errno in (errno.ENOTTY, errno.EINVAL) and not host.linux_at_least(6, 19):
            pytest.skip(f"{host.profile}: kernel before Linux 6.19 (no DMA_BUF feature)")
        raise


def test_mmap_of_a_vfio_dma_buf_einval(host: Host) -> None:
    """dma-buf.c:dma_buf_mmap_internal: vfio-pci's dma-buf ops have no mmap -> EINVAL (the fd of
    VFIO_DEVICE_FEATURE_DMA_BUF, Linux 6.19+); opened read-only, do_mmap's EACCES for a shared
    writable map comes first."""
    with iommufd_session(host) as s:
        cdev = s.cdev(host.edu)
        s.bind(cdev, s.iommufd())
        expect_errno(errno.EINVAL, s.k.mmap, _dma_buf(host, s, cdev), 4096, 0)
        readonly = _dma_buf(host, s, cdev, open_flags=os.O_RDONLY)
        expect_errno(errno.EACCES, s.k.mmap, readonly, 4096, 0)


def test_dma_buf_huge_range_count_enomem(host: Host) -> None:
    """vfio_pci_dmabuf.c: memdup_array_user of nr_ranges entries: 2^32 - 1 of them is more than
    kmalloc gives -> ENOMEM (before the ranges are read)."""
    with iommufd_session(host) as s:
        cdev = s.cdev(host.edu)
        s.bind(cdev, s.iommufd())
        _dma_buf(host, s, cdev)  # the feature exists (else skip)
        expect_errno(errno.ENOMEM, _dma_buf, host, s, cdev, 0xFFFFFFFF)


def _vfio_ioas(s: object, fd: int, op: int, ioas_id: int = 0) -> int:
    arg = new("struct iommu_vfio_ioas *", op=op, ioas_id=ioas_id)
    s.k.ioctl(fd, uapi.IOMMU_VFIO_IOAS, arg)  # type: ignore[attr-defined]
    return int(arg.ioas_id)


def test_vfio_ioas_get_without_compat_enodev(host: Host) -> None:
    """vfio_compat.c:iommufd_vfio_ioas: GET with no compat IOAS -> ENODEV."""
    with iommufd_session(host) as s:
        fd = s.iommufd()
        expect_errno(errno.ENODEV, _vfio_ioas, s, fd, C.IOMMU_VFIO_IOAS_GET)


def test_vfio_ioas_set_get_clear(host: Host) -> None:
    """vfio_compat.c:iommufd_vfio_ioas: SET then GET returns the id; CLEAR forgets it."""
    with iommufd_session(host) as s:
        fd = s.iommufd()
        ioas = s.ioas(fd)
        _vfio_ioas(s, fd, C.IOMMU_VFIO_IOAS_SET, ioas)
        assert _vfio_ioas(s, fd, C.IOMMU_VFIO_IOAS_GET) == ioas
        _vfio_ioas(s, fd, C.IOMMU_VFIO_IOAS_CLEAR)
        expect_errno(errno.ENODEV, _vfio_ioas, s, fd, C.IOMMU_VFIO_IOAS_GET)


def test_vfio_ioas_set_unknown_enoent(host: Host) -> None:
    """vfio_compat.c:iommufd_vfio_ioas: SET of an id that is no IOAS -> ENOENT."""
    with iommufd_session(host) as s:
        fd = s.iommufd()
        expect_errno(errno.ENOENT, _vfio_ioas, s, fd, C.IOMMU_VFIO_IOAS_SET, 77)


def test_vfio_ioas_bad_op_eopnotsupp(host: Host) -> None:
    """vfio_compat.c:iommufd_vfio_ioas: an unknown op -> EOPNOTSUPP."""
    with iommufd_session(host) as s:
        fd = s.iommufd()
        expect_errno(errno.EOPNOTSUPP, _vfio_ioas, s, fd, 9)


def test_destroying_compat_ioas_clears_it(host: Host) -> None:
    """main.c:iommufd_destroy -> vfio_compat: destroying the compat IOAS makes GET ENODEV."""
    with iommufd_session(host) as s:
        fd = s.iommufd()
        ioas = s.ioas(fd)
        _vfio_ioas(s, fd, C.IOMMU_VFIO_IOAS_SET, ioas)
        s.destroy(fd, ioas)
        expect_errno(errno.ENODEV, _vfio_ioas, s, fd, C.IOMMU_VFIO_IOAS_GET)


@pytest.mark.fake_only("the knob: stock Debian's kernels have no iommufd, the fake can pretend")
def test_no_iommufd_knob_no_dev_iommu(host: Host) -> None:
    """Debian kernels (CONFIG_IOMMUFD unset): /dev/iommu does not exist -> ENOENT."""
    host.kernel.knobs.iommufd = False  # type: ignore[attr-defined]
    assert not host.kernel.exists("/dev/iommu")
    expect_errno(errno.ENOENT, host.kernel.open, "/dev/iommu")
