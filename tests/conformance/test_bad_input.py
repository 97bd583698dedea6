"""Absurd indexes, sizes and names: the kernel answers an errno, fast, and keeps nothing.

Regression tests of issue 15 items 4 and 5 (the fake raised OverflowError, or allocated the size a
caller stated) and of the device-name rule of VFIO_GROUP_GET_DEVICE_FD.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
from collections.abc import Iterator

import pytest

from pyvfio import uapi
from pyvfio._ffi import C, ffi, new
from pyvfio.fake.linux import Linux
from tests.conformance.iommufd_helpers import iommufd_session, require_iommufd
from tests.conformance.vfio_helpers import buffer, dma_map, dma_unmap, name_arg, session
from tests.conftest import Host
from tests.helpers import expect_errno, expect_ok

PAGE = mmap.PAGESIZE
TOKEN = "0a1b2c3d-0000-4000-8000-00000000abcd"


def test_region_info_index_beyond_u24_einval(host: Host) -> None:
    """vfio_pci_ioctl_get_region_info: an index past the regions -> EINVAL, whatever its size
    (index << 40 would not fit the u64 offset)."""
    with session(host) as s:
        _, _, d = s.edu()
        for index in (1 << 24, 0xFFFFFFFF):
            info = new("struct vfio_region_info *", argsz=32, index=index)
            expect_errno(errno.EINVAL, s.k.ioctl, d, uapi.VFIO_DEVICE_GET_REGION_INFO, info)


def test_map_dma_size_far_beyond_buffer_efault(host: Host) -> None:
    """vfio_pin_pages_remote: the first page past a 1 MiB buffer fails the pin -> EFAULT, and
    nothing stays mapped (the ~508 GiB size is never walked)."""
    if host.noiommu:
        pytest.skip("noiommu: no type1 to map into")
    with session(host) as s:
        c, _, _ = s.edu()
        buf = buffer(1 << 20)
        try:
            huge = (1 << 39) - (1 << 32)  # up to the top of a 39-bit aperture (the lane's)
            m = new("struct vfio_iommu_type1_dma_map *", argsz=32, iova=1 << 32, size=huge,
                    vaddr=int(ffi.cast("uintptr_t", ffi.from_buffer(buf))),
                    flags=C.VFIO_DMA_MAP_FLAG_READ | C.VFIO_DMA_MAP_FLAG_WRITE)
            expect_errno(errno.EFAULT, s.k.ioctl, c, uapi.VFIO_IOMMU_MAP_DMA, m)
            assert dma_unmap(host, c, 0, 0, C.VFIO_DMA_UNMAP_FLAG_ALL) == 0
            dma_map(host, c, buf, 0x100000)  # the same IOVA is free
        finally:
            s.close_all()
            buf.close()


@pytest.fixture
def guarded() -> Iterator[int]:
    """Two pages; the second is PROT_NONE: the address of the end of the first page."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    prot_rw, private_anon = mmap.PROT_READ | mmap.PROT_WRITE, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS
    base = libc.mmap(None, 2 * PAGE, prot_rw, private_anon, -1, 0)
    assert base not in (None, ctypes.c_void_p(-1).value)
    assert libc.mprotect(base + PAGE, PAGE, 0) == 0  # PROT_NONE
    try:
        yield base + PAGE
    finally:
        libc.munmap(base, 2 * PAGE)


def _destroy_at(addr: int, size: int, tail: bytes = b"") -> None:
    """Write an iommu_destroy {size, id 0} ending at ``addr``, followed by ``tail``."""
    start = addr - 8 - len(tail)
    ctypes.memmove(start, (size).to_bytes(4, "little") + bytes(4) + tail, 8 + len(tail))


def test_iommufd_size_huge_tail_unreadable_efault(host: Host, guarded: int) -> None:
    """copy_struct_from_user: a zero tail running into an unreadable page -> EFAULT (the size
    0xffffffff is read lazily, never allocated)."""
    with iommufd_session(host) as s:
        fd = s.iommufd()
        _destroy_at(guarded, 0xFFFFFFFF)
        expect_errno(errno.EFAULT, s.k.ioctl, fd, uapi.IOMMU_DESTROY, guarded - 8)


def test_iommufd_size_huge_nonzero_tail_e2big(host: Host, guarded: int) -> None:
    """check_zeroed_user: a non-zero byte before the unreadable page -> E2BIG."""
    with iommufd_session(host) as s:
        fd = s.iommufd()
        _destroy_at(guarded, 0xFFFFFFFF, tail=bytes(7) + b"\1")
        expect_errno(errno.E2BIG, s.k.ioctl, fd, uapi.IOMMU_DESTROY, guarded - 16)


def test_iommufd_size_zero_tail_reaches_handler(host: Host, guarded: int) -> None:
    """A zero tail that is readable: the struct is accepted, IOMMU_DESTROY of id 0 -> ENOENT."""
    with iommufd_session(host) as s:
        fd = s.iommufd()
        _destroy_at(guarded, 16, tail=bytes(8))
        expect_errno(errno.ENOENT, s.k.ioctl, fd, uapi.IOMMU_DESTROY, guarded - 16)


def test_iommufd_size_read_before_request_check_efault(host: Host) -> None:
    """iommufd_fops_ioctl: get_user(size) comes before the table lookup: an unknown request in
    the range with a NULL argument -> EFAULT, ENOTTY with a readable one."""
    with iommufd_session(host) as s:
        fd = s.iommufd()
        odd = uapi.IOMMU_DESTROY | 8 << 16  # IOMMU_DESTROY's nr, with size bits set
        expect_errno(errno.EFAULT, s.k.ioctl, fd, odd, 0)
        expect_errno(errno.ENOTTY, s.k.ioctl, fd, odd, ffi.new("uint32_t *", 8))


# -- the device name of VFIO_GROUP_GET_DEVICE_FD (vfio_pci_core_match) -------------------------


def test_device_name_checked_before_container_enodev(host: Host) -> None:
    """group.c:vfio_group_ioctl_get_device_fd: the name is matched before the container is
    checked: an unknown name without a container -> ENODEV, a known one -> EINVAL."""
    with session(host) as s:
        g = s.group(host.edu_group)
        expect_errno(errno.ENODEV, s.k.ioctl, g, uapi.VFIO_GROUP_GET_DEVICE_FD,
                     name_arg("0000:ff:1f.7"))
        expect_errno(errno.EINVAL, s.k.ioctl, g, uapi.VFIO_GROUP_GET_DEVICE_FD,
                     name_arg(host.edu))


def test_device_name_trailing_spaces_match(host: Host) -> None:
    """vfio_pci_core_match: spaces after the name are skipped: the device opens."""
    with session(host) as s:
        _, g = s.ready(host.edu_group)
        s.track(expect_ok(s.k.ioctl, g, uapi.VFIO_GROUP_GET_DEVICE_FD, name_arg(host.edu + "  ")))


def test_device_name_other_suffix_enodev(host: Host) -> None:
    """vfio_pci_core_match: a character other than a space after the name: no match."""
    with session(host) as s:
        _, g = s.ready(host.edu_group)
        expect_errno(errno.ENODEV, s.k.ioctl, g, uapi.VFIO_GROUP_GET_DEVICE_FD,
                     name_arg(host.edu + "0"))


@pytest.mark.parametrize("option", [f"vf_token={TOKEN}", "vf_token=not-a-uuid", "vf_token=",
                                    "frob=1", f"vf_token={TOKEN} vf_token={TOKEN}"])
def test_device_name_option_not_pf_or_vf_einval(host: Host, option: str) -> None:
    """vfio_pci_core_match + vfio_pci_validate_vf_token: on a device that is neither PF nor VF a
    well-formed token is EINVAL, and so is a malformed one, an unknown or a repeated option."""
    with session(host) as s:
        _, g = s.ready(host.edu_group)
        expect_errno(errno.EINVAL, s.k.ioctl, g, uapi.VFIO_GROUP_GET_DEVICE_FD,
                     name_arg(f"{host.edu} {option}"))


# -- ioctls newer than the kernel ---------------------------------------------------------------


def _linux(host: Host) -> Linux:
    version = getattr(host.kernel, "linux", None)
    return version if isinstance(version, Linux) else Linux.parse(os.uname().release)


def test_iommufd_ioctls_newer_than_kernel_enotty(host: Host) -> None:
    """An iommufd ioctl the kernel does not have yet -> ENOTTY (iommufd_fops_ioctl: not in
    iommufd_ioctl_ops[]; the argument is a readable size, so no EFAULT can come first)."""
    with iommufd_session(host) as s:
        fd = s.iommufd()
        linux = _linux(host)
        newer = {uapi.IOMMU_IOAS_MAP_FILE: "6.13", uapi.IOMMU_VIOMMU_ALLOC: "6.13",
                 uapi.IOMMU_VEVENTQ_ALLOC: "6.15", uapi.IOMMU_HW_QUEUE_ALLOC: "6.17"}
        size = ffi.new("uint32_t[16]", [64])
        for request, since in newer.items():
            if not linux.at_least(since):
                expect_errno(errno.ENOTTY, s.k.ioctl, fd, request, size)


# -- unknown flag bits of the cdev ioctls (device_cdev.c) ----------------------------------------


@pytest.mark.parametrize(("name", "size"), [("VFIO_DEVICE_ATTACH_IOMMUFD_PT", 12),
                                            ("VFIO_DEVICE_DETACH_IOMMUFD_PT", 8)])
def test_cdev_attach_detach_unknown_flag_einval(host: Host, name: str, size: int) -> None:
    """vfio_df_ioctl_attach_pt / detach_pt: a flag bit the kernel does not know -> EINVAL."""
    with iommufd_session(host) as s:
        _, ioas, cdev, _ = s.bound_edu()
        arg = ffi.new("uint32_t[4]", [size, 1 << 31, ioas])
        expect_errno(errno.EINVAL, s.k.ioctl, cdev, uapi.IOCTLS[name], arg)


def test_cdev_bind_unknown_flag_einval(host: Host) -> None:
    """vfio_df_ioctl_bind_iommufd: a flag bit the kernel does not know -> EINVAL, not bound."""
    with iommufd_session(host) as s:
        fd, cdev = s.iommufd(), s.cdev(host.edu)
        arg = new("struct vfio_device_bind_iommufd *", argsz=16, flags=1 << 31, iommufd=fd)
        expect_errno(errno.EINVAL, s.k.ioctl, cdev, uapi.VFIO_DEVICE_BIND_IOMMUFD, arg)
        s.bind(cdev, fd)  # still unbound: binding now works


def test_device_name_longer_than_a_page_einval(host: Host) -> None:
    """strndup_user(arg, PAGE_SIZE): no NUL within the first 4096 bytes -> EINVAL; a name of
    4095 characters and its NUL is read (and matches nothing: ENODEV)."""
    with session(host) as s:
        _, g = s.ready(host.edu_group)
        expect_errno(errno.EINVAL, s.k.ioctl, g, uapi.VFIO_GROUP_GET_DEVICE_FD,
                     ffi.new("char[]", b"a" * PAGE))
        expect_errno(errno.ENODEV, s.k.ioctl, g, uapi.VFIO_GROUP_GET_DEVICE_FD,
                     ffi.new("char[]", b"a" * (PAGE - 1)))


# -- VFIO_DEVICE_BIND_IOMMUFD's copy-in (device_cdev.c:vfio_df_ioctl_bind_iommufd) --------------


def _bind_at(end: int, argsz: int, iommufd: int, tail: bytes = b"") -> int:
    """Write a vfio_device_bind_iommufd {argsz, flags 0, iommufd} (24 bytes, token_uuid_ptr 0)
    followed by ``tail``, ending at ``end``; return its address."""
    start = end - 24 - len(tail)
    head = argsz.to_bytes(4, "little") + bytes(4) + iommufd.to_bytes(4, "little", signed=True)
    ctypes.memmove(start, head + bytes(12) + tail, 24 + len(tail))
    return start


def test_cdev_bind_argsz_into_unreadable_page_efault(host: Host, guarded: int) -> None:
    """6.17+ reads argsz with get_user and the struct with copy_struct_from_user(argsz): an argsz
    reaching an unreadable page is EFAULT before any other check (iommufd -1 would be EINVAL),
    and a valid struct with it binds nothing.  6.12 copied minsz (16) bytes only: the same
    argument is EINVAL for iommufd -1 and binds with a valid iommufd."""
    with iommufd_session(host) as s:
        fd, cdev = s.iommufd(), s.cdev(host.edu)
        new_copy = host.linux_at_least(6, 17)
        bad = _bind_at(guarded, 0xFFFFFFFF, -1)
        expect_errno(errno.EFAULT if new_copy else errno.EINVAL,
                     s.k.ioctl, cdev, uapi.VFIO_DEVICE_BIND_IOMMUFD, bad)
        arg = _bind_at(guarded, 0xFFFFFFFF, fd)
        if new_copy:
            expect_errno(errno.EFAULT, s.k.ioctl, cdev, uapi.VFIO_DEVICE_BIND_IOMMUFD, arg)
            s.bind(cdev, fd)  # still unbound
        else:
            expect_ok(s.k.ioctl, cdev, uapi.VFIO_DEVICE_BIND_IOMMUFD, arg)
            assert int.from_bytes(ctypes.string_at(arg + 12, 4), "little") > 0  # out_devid


def test_group_device_bind_argsz_into_unreadable_page_efault(host: Host, guarded: int) -> None:
    """BIND on a device fd opened through its group reaches vfio_df_ioctl_bind_iommufd too
    (vfio_main.c:vfio_device_fops_unl_ioctl, before the access check): the copy-in comes before
    "only allowed for cdev fds", so 6.17+ answers EFAULT where a readable struct is EINVAL.
    (Hosts with iommufd only: without CONFIG_VFIO_DEVICE_CDEV the ioctl is ENOTTY.)"""
    require_iommufd(host)
    with session(host) as s:
        _, _, d = s.edu()
        arg = _bind_at(guarded, 0xFFFFFFFF, 3)
        expect_errno(errno.EFAULT if host.linux_at_least(6, 17) else errno.EINVAL,
                     s.k.ioctl, d, uapi.VFIO_DEVICE_BIND_IOMMUFD, arg)
        expect_errno(errno.EINVAL, s.k.ioctl, d, uapi.VFIO_DEVICE_BIND_IOMMUFD,
                     _bind_at(guarded, 24, 3))


def test_cdev_bind_nonzero_tail_e2big(host: Host, guarded: int) -> None:
    """copy_struct_from_user (6.17+): a non-zero byte past the 24-byte struct -> E2BIG, before
    the iommufd check; 6.12 never reads past 16 bytes (iommufd -1: EINVAL)."""
    with iommufd_session(host) as s:
        cdev = s.cdev(host.edu)
        arg = _bind_at(guarded, 0xFFFFFFFF, -1, tail=bytes(7) + b"\1")
        expect_errno(errno.E2BIG if host.linux_at_least(6, 17) else errno.EINVAL,
                     s.k.ioctl, cdev, uapi.VFIO_DEVICE_BIND_IOMMUFD, arg)


def test_cdev_bind_writes_back_out_devid_only(host: Host) -> None:
    """BIND copies back out_devid alone (copy_to_user(&arg->out_devid)): a token_uuid_ptr the
    kernel ignores (no VFIO_DEVICE_BIND_FLAG_TOKEN) stays as the caller wrote it, and 6.17+
    copies all 24 bytes in (kernel size sizeof(struct): a non-zero token_uuid_ptr is no E2BIG)."""
    with iommufd_session(host) as s:
        fd, cdev = s.iommufd(), s.cdev(host.edu)
        arg = new("struct vfio_device_bind_iommufd *", argsz=24, iommufd=fd,
                  token_uuid_ptr=0x5A5A5A5A00001000)
        expect_ok(s.k.ioctl, cdev, uapi.VFIO_DEVICE_BIND_IOMMUFD, arg)
        assert arg.out_devid > 0
        assert (arg.argsz, arg.flags, arg.iommufd) == (24, 0, fd)
        assert arg.token_uuid_ptr == 0x5A5A5A5A00001000
