"""An mtty mdev as a VFIO device: mtty's own ioctls, its emulated IOMMU group, its cdev access.

Specification: samples/vfio-mdev/mtty.c (mtty_ioctl, mtty_set_irqs, mdev_access,
handle_pci_cfg_write), drivers/vfio/vfio_iommu_type1.c (an emulated group brings no domain:
vfio_dma_do_map pins nothing, vfio_iommu_iova_build_caps adds no range, PAGE_MASK page sizes,
vfio_iommu_has_emulated), drivers/vfio/iommufd.c + iommufd/device.c (the emulated bind is an
access object; attach takes an IOAS and holds it), device_cdev.c (no PASID ops: EOPNOTSUPP).
Real: the lane's 7.3 profiles with ``mtty`` loaded; fake: :func:`pyvfio.fake.mtty.add_mtty`.
"""

from __future__ import annotations

import errno
import mmap
import os
import struct
from collections.abc import Iterator

import pytest

from pyvfio import uapi
from pyvfio._ffi import C, ffi, new
from pyvfio.host import mdev
from tests.conformance.iommufd_helpers import iommufd_session
from tests.conformance.test_mdev import U1, mtty  # noqa: F401 - the fixture
from tests.conformance.vfio_helpers import Session, cfg_read, cfg_write, name_arg, session
from tests.conftest import Host
from tests.helpers import expect_errno, expect_ok

U64 = (1 << 64) - 1
CONFIG, BAR0 = 7 << 40, 0
UART_RX, UART_LSR, LSR_DR, LSR_EMPTY = 0, 5, 0x01, 0x60


@pytest.fixture
def uuid(mtty: object) -> str:  # noqa: F811 - the fixture of test_mdev
    """A fresh mtty-2 mdev (GET_INFO never called on it yet)."""
    return mdev.create(mtty, "mtty", "mtty-2", U1)  # type: ignore[arg-type]


def _group(host: Host, uuid: str) -> int:
    link = host.kernel.sysfs_readlink(f"bus/mdev/devices/{uuid}/iommu_group")
    return int(os.path.basename(link))


@pytest.fixture
def opened(host: Host, uuid: str) -> Iterator[tuple[Session, int, int]]:
    """(session, type1v2 container, the mdev's device fd)."""
    with session(host) as s:
        c, g = s.container(), s.group(_group(host, uuid))
        s.attach(g, c)
        s.k.ioctl(c, uapi.VFIO_SET_IOMMU, int(C.VFIO_TYPE1v2_IOMMU))
        yield s, c, s.device(g, uuid)


def _irq_info(s: Session, dev: int, index: int) -> object:
    info = new("struct vfio_irq_info *", index=index)
    s.k.ioctl(dev, uapi.VFIO_DEVICE_GET_IRQ_INFO, info)
    return info


def _device_info(s: Session, dev: int) -> object:
    info = new("struct vfio_device_info *")
    s.k.ioctl(dev, uapi.VFIO_DEVICE_GET_INFO, info)
    return info


def test_irq_info_before_get_info_einval(opened: tuple[Session, int, int]) -> None:
    """mtty_ioctl: GET_IRQ_INFO checks against the dev_info GET_INFO saved, zero until then."""
    s, _, dev = opened
    expect_errno(errno.EINVAL, _irq_info, s, dev, C.VFIO_PCI_INTX_IRQ_INDEX)
    _device_info(s, dev)
    assert expect_ok(_irq_info, s, dev, C.VFIO_PCI_INTX_IRQ_INDEX).count == 1  # type: ignore


def test_device_info_has_no_reset_flag(opened: tuple[Session, int, int]) -> None:
    """mtty_get_device_info: PCI, 9 regions, 5 irqs, and no VFIO_DEVICE_FLAGS_RESET."""
    s, _, dev = opened
    info = _device_info(s, dev)
    assert info.flags == C.VFIO_DEVICE_FLAGS_PCI  # type: ignore[attr-defined]
    assert (info.num_regions, info.num_irqs) == (9, 5)  # type: ignore[attr-defined]


def test_region_info(opened: tuple[Session, int, int]) -> None:
    """mtty_ioctl_get_region_info: every index READ|WRITE at index << 40; config 0xff bytes,
    two 8-byte I/O BARs on mtty-2, the rest size 0; index 9 EINVAL."""
    s, _, dev = opened
    rw = C.VFIO_REGION_INFO_FLAG_READ | C.VFIO_REGION_INFO_FLAG_WRITE
    sizes = {}
    for index in range(9):
        info = new("struct vfio_region_info *", index=index)
        s.k.ioctl(dev, uapi.VFIO_DEVICE_GET_REGION_INFO, info)
        assert (info.flags, info.offset) == (rw, index << 40)
        sizes[index] = info.size
    assert sizes == {0: 8, 1: 8, 2: 0, 3: 0, 4: 0, 5: 0, 6: 0, 7: 0xFF, 8: 0}
    info = new("struct vfio_region_info *", index=9)
    expect_errno(errno.EINVAL, s.k.ioctl, dev, uapi.VFIO_DEVICE_GET_REGION_INFO, info)


def test_irq_info_intx_and_msi_only(opened: tuple[Session, int, int]) -> None:
    """mtty_get_irq_info: INTx maskable+automasked, MSI noresize, count 1; MSI-X EINVAL."""
    s, _, dev = opened
    _device_info(s, dev)
    intx = _irq_info(s, dev, C.VFIO_PCI_INTX_IRQ_INDEX)
    assert intx.flags == (C.VFIO_IRQ_INFO_EVENTFD | C.VFIO_IRQ_INFO_MASKABLE  # type: ignore
                          | C.VFIO_IRQ_INFO_AUTOMASKED)
    msi = _irq_info(s, dev, C.VFIO_PCI_MSI_IRQ_INDEX)
    assert (msi.flags, msi.count) == (  # type: ignore[attr-defined]
        C.VFIO_IRQ_INFO_EVENTFD | C.VFIO_IRQ_INFO_NORESIZE, 1)
    expect_errno(errno.EINVAL, _irq_info, s, dev, C.VFIO_PCI_MSIX_IRQ_INDEX)


def _set_irqs(s: Session, dev: int, index: int, flags: int, fds: list[int] | None = None,
              count: int | None = None) -> None:
    fds = fds or []
    n = len(fds) if count is None else count
    raw = ffi.new("char[]", 20 + 4 * len(fds))
    struct.pack_into(f"<IIIII{len(fds)}i", ffi.buffer(raw), 0, 20 + 4 * len(fds), flags, index,
                     0, n, *fds)
    s.k.ioctl(dev, uapi.VFIO_DEVICE_SET_IRQS, raw)


def test_intx_trigger_signals_once_then_masks(host: Host,
                                              opened: tuple[Session, int, int]) -> None:
    """mtty_trigger_interrupt: INTx signals the eventfd and masks itself; UNMASK lets the next
    trigger through; MSI-X is ENOTTY (mtty_set_irqs)."""
    s, _, dev = opened
    _device_info(s, dev)
    efd = s.track(s.k.eventfd(0, os.EFD_NONBLOCK))
    trigger, none = C.VFIO_IRQ_SET_ACTION_TRIGGER, C.VFIO_IRQ_SET_DATA_NONE
    intx = C.VFIO_PCI_INTX_IRQ_INDEX
    _set_irqs(s, dev, intx, trigger | C.VFIO_IRQ_SET_DATA_EVENTFD, [efd])
    _set_irqs(s, dev, intx, trigger | none, count=1)
    _set_irqs(s, dev, intx, trigger | none, count=1)  # masked: no second signal
    assert struct.unpack("<Q", s.k.read(efd, 8))[0] == 1
    _set_irqs(s, dev, intx, C.VFIO_IRQ_SET_ACTION_UNMASK | none, count=1)
    _set_irqs(s, dev, intx, trigger | none, count=1)
    assert struct.unpack("<Q", s.k.read(efd, 8))[0] == 1
    expect_errno(errno.ENOTTY, _set_irqs, s, dev, C.VFIO_PCI_MSIX_IRQ_INDEX, trigger | none,
                 count=0)
    _set_irqs(s, dev, intx, C.VFIO_IRQ_SET_ACTION_TRIGGER | C.VFIO_IRQ_SET_DATA_NONE, count=0)


def test_reset_ok_other_ioctls_enotty_no_mmap(host: Host,
                                              opened: tuple[Session, int, int]) -> None:
    """mtty_ioctl: RESET 0, anything else (IOEVENTFD, HOT_RESET_INFO) ENOTTY; no mmap op
    (vfio_device_fops_mmap: EINVAL)."""
    s, _, dev = opened
    expect_ok(s.k.ioctl, dev, uapi.VFIO_DEVICE_RESET)
    ioev = new("struct vfio_device_ioeventfd *", flags=1, fd=-1)
    expect_errno(errno.ENOTTY, s.k.ioctl, dev, uapi.VFIO_DEVICE_IOEVENTFD, ioev)
    info = new("struct vfio_pci_hot_reset_info *")
    expect_errno(errno.ENOTTY, s.k.ioctl, dev, uapi.VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, info)
    expect_errno(errno.EINVAL, s.k.mmap, dev, mmap.PAGESIZE, BAR0)


def test_config_space_is_mttys(host: Host, opened: tuple[Session, int, int]) -> None:
    """handle_pci_cfg_write: command writes are ignored (I/O+ stays), BAR0 sizes to 8 bytes
    of I/O space."""
    _, _, dev = opened
    assert cfg_read(host, dev, 0x08, 4) == 0x07000210  # class 0x070002, revision 0x10
    cfg_write(host, dev, 0x04, 2, 0x0007)
    assert cfg_read(host, dev, 0x04, 2) == 0x0001
    cfg_write(host, dev, 0x10, 4, 0xFFFFFFFF)
    assert cfg_read(host, dev, 0x10, 4) == 0xFFFFFFF9


def test_port_loops_back(host: Host, opened: tuple[Session, int, int]) -> None:
    """handle_bar_write/read: a byte sent on port 0 comes back at RX; LSR says data ready."""
    s, _, dev = opened
    assert s.k.pread(dev, 1, BAR0 + UART_LSR)[0] & (LSR_DR | LSR_EMPTY) == LSR_EMPTY
    s.k.pwrite(dev, b"Z", BAR0 + UART_RX)
    assert s.k.pread(dev, 1, BAR0 + UART_LSR)[0] & LSR_DR
    assert s.k.pread(dev, 1, BAR0 + UART_RX) == b"Z"


def test_group_name_is_exact(host: Host, opened: tuple[Session, int, int], uuid: str) -> None:
    """vfio_device_get_from_name: no match op, strcmp: the UUID with anything after -> ENODEV."""
    s, _, _ = opened
    g = s.fds[1]
    for name in (uuid + " vf_token=" + U1, uuid.upper(), uuid[:-1]):
        expect_errno(errno.ENODEV, s.k.ioctl, g, uapi.VFIO_GROUP_GET_DEVICE_FD, name_arg(name))


def _check_ext(s: Session, c: int, ext: int) -> int:
    return int(s.k.ioctl(c, uapi.VFIO_CHECK_EXTENSION, ext))


def test_container_has_no_iommu_domain(host: Host, opened: tuple[Session, int, int]) -> None:
    """An emulated group brings no domain: page sizes PAGE_MASK, no IOVA range capability,
    no VFIO_UPDATE_VADDR, DMA_CC_IOMMU answered 1 (no domain lacks it)."""
    s, c, _ = opened
    info = new("struct vfio_iommu_type1_info *", argsz=256)
    raw = ffi.new("char[]", 256)
    ffi.memmove(raw, info, ffi.sizeof(info[0]))
    struct.pack_into("<I", ffi.buffer(raw), 0, 256)
    s.k.ioctl(c, uapi.VFIO_IOMMU_GET_INFO, raw)
    _, _flags, pgsizes, cap_offset = struct.unpack_from("<IIQI", ffi.buffer(raw))
    assert pgsizes == U64 & ~(mmap.PAGESIZE - 1)
    ids = []
    while cap_offset:
        cap_id, _, cap_offset = struct.unpack_from("<HHI", ffi.buffer(raw), cap_offset)
        ids.append(cap_id)
    assert C.VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE not in ids
    assert C.VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL in ids
    assert _check_ext(s, c, C.VFIO_UPDATE_VADDR) == 0
    assert _check_ext(s, c, C.VFIO_DMA_CC_IOMMU) == 1


def test_container_maps_without_pinning(host: Host, opened: tuple[Session, int, int]) -> None:
    """vfio_dma_do_map: with no IOMMU domain nothing is pinned, so an address no page backs
    maps, even at an IOVA a VT-d domain would reserve (the MSI window)."""
    s, c, _ = opened
    buf = mmap.mmap(-1, 2 * mmap.PAGESIZE)
    vaddr = int(ffi.cast("uintptr_t", ffi.from_buffer(buf)))
    buf.close()  # the range is no longer mapped
    rw = C.VFIO_DMA_MAP_FLAG_READ | C.VFIO_DMA_MAP_FLAG_WRITE
    m = new("struct vfio_iommu_type1_dma_map *", flags=rw, vaddr=vaddr, iova=0xFEE00000,
            size=2 * mmap.PAGESIZE)
    expect_ok(s.k.ioctl, c, uapi.VFIO_IOMMU_MAP_DMA, m)
    u = new("struct vfio_iommu_type1_dma_unmap *", iova=0xFEE00000, size=2 * mmap.PAGESIZE)
    s.k.ioctl(c, uapi.VFIO_IOMMU_UNMAP_DMA, u)
    assert u.size == 2 * mmap.PAGESIZE


def test_cdev_access_rules(host: Host, uuid: str) -> None:
    """The emulated bind is an access: its id and the attached IOAS are EBUSY to destroy;
    ATTACH answers the IOAS id, needs an IOAS (ENOENT otherwise), replaces; PASID attach
    EOPNOTSUPP; after DETACH the IOAS can go."""
    with iommufd_session(host) as s:
        [name] = host.kernel.sysfs_listdir(f"bus/mdev/devices/{uuid}/vfio-dev")
        fd = s.iommufd()
        ioas, other = s.ioas(fd), s.ioas(fd)
        cdev = s.track(s.k.open(f"/dev/vfio/devices/{name}"))
        devid = s.bind(cdev, fd)
        assert s.attach(cdev, ioas) == ioas
        expect_errno(errno.EBUSY, s.destroy, fd, devid)
        expect_errno(errno.EBUSY, s.destroy, fd, ioas)
        expect_errno(errno.ENOENT, s.attach, cdev, devid)
        assert s.attach(cdev, other) == other
        s.destroy(fd, ioas)  # replaced: no longer held
        arg = new("struct vfio_device_attach_iommufd_pt *",
                  argsz=ffi.sizeof("struct vfio_device_attach_iommufd_pt"),
                  flags=C.VFIO_DEVICE_ATTACH_PASID, pt_id=other, pasid=1)
        expect_errno(errno.EOPNOTSUPP, s.k.ioctl, cdev, uapi.VFIO_DEVICE_ATTACH_IOMMUFD_PT, arg)
        s.detach(cdev)
        s.destroy(fd, other)


def test_cdev_bind_with_token_einval(host: Host, uuid: str) -> None:
    """device_cdev.c:vfio_df_check_token: mtty has no match_token_uuid op, so
    VFIO_DEVICE_BIND_FLAG_TOKEN (6.17+) is EINVAL."""
    if not host.linux_at_least(6, 17):
        pytest.skip(f"Linux {host.linux}: VFIO_DEVICE_BIND_FLAG_TOKEN is 6.17+")
    with iommufd_session(host) as s:
        [name] = host.kernel.sysfs_listdir(f"bus/mdev/devices/{uuid}/vfio-dev")
        fd = s.iommufd()
        cdev = s.track(s.k.open(f"/dev/vfio/devices/{name}"))
        token = ffi.new("uint8_t[16]")
        arg = new("struct vfio_device_bind_iommufd *", argsz=ffi.sizeof(
            "struct vfio_device_bind_iommufd"), flags=C.VFIO_DEVICE_BIND_FLAG_TOKEN, iommufd=fd,
            token_uuid_ptr=int(ffi.cast("uintptr_t", token)))
        expect_errno(errno.EINVAL, s.k.ioctl, cdev, uapi.VFIO_DEVICE_BIND_IOMMUFD, arg)
        assert s.bind(cdev, fd) >= 1
