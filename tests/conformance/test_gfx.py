"""Display planes of mdevs: VFIO_DEVICE_QUERY_GFX_PLANE and VFIO_DEVICE_GET_GFX_DMABUF.

Specification: Linux 7.3 samples/vfio-mdev/mdpy.c (region plane: mdpy_query_gfx_plane,
mdpy_ioctl_get_region_info) and mbochs.c (dma-buf plane: mbochs_query_gfx_plane,
mbochs_check_framebuffer, mbochs_get_gfx_dmabuf, mbochs_dmabuf_export); vfio-pci and mtty have no
display (their ioctl's default: ENOTTY).  Real: the lane's iommufd-7.3 profile loads mdpy and
mbochs; fake: pyvfio.fake.mdpy.add_mdpy, pyvfio.fake.mbochs.add_mbochs.  Through pyvfio.gfx.
"""

from __future__ import annotations

import errno
import os
import struct
from collections.abc import Callable, Iterator

import pytest

from pyvfio import gfx
from pyvfio.container import Container
from pyvfio.device import Device
from pyvfio.fake.mbochs import add_mbochs
from pyvfio.fake.mdpy import add_mdpy
from pyvfio.group import Group
from pyvfio.host import mdev
from pyvfio.kernel import Kernel
from tests.conftest import Host
from tests.helpers import expect_errno, expect_ok

U1 = "5e7ee1f0-0000-4000-8000-00000000b001"
MMIO, DISPI = 2, 0x500  # mbochs: BAR2, the bochs dispi registers (2 bytes each)
XRES, YRES, BPP, ENABLE, X_OFFSET = 1, 2, 3, 4, 8


@pytest.fixture
def opened(host: Host, request: pytest.FixtureRequest) -> Iterator[Device]:
    """A fresh mdev of ``request.param`` = (driver, type), opened through its group."""
    driver, mdev_type = request.param
    k = host.kernel
    adders: dict[str, Callable[[Kernel], None]] = {"mdpy": add_mdpy, "mbochs": add_mbochs}  # type: ignore[dict-item]
    if host.profile == "fake":
        adders[driver](k)
    if not k.sysfs_exists(f"class/mdev_bus/{driver}"):
        pytest.skip(f"{host.profile}: no {driver} (samples/vfio-mdev; the lane's iommufd-7.3 "
                    "loads it)")
    uid = mdev.create(k, driver, mdev_type, U1)
    try:
        number = int(os.path.basename(k.sysfs_readlink(f"bus/mdev/devices/{uid}/iommu_group")))
        with Container(k) as c, Group(number, kernel=k) as g:
            g.set_container(c)
            c.set_iommu()
            with g.open_device(uid) as dev:
                yield dev
    finally:
        mdev.remove(k, uid)


MDPY_VGA = pytest.mark.parametrize("opened", [("mdpy", "mdpy-vga")], indirect=True)
MBOCHS_SMALL = pytest.mark.parametrize("opened", [("mbochs", "mbochs-small")], indirect=True)


@MDPY_VGA
def test_mdpy_probe_region_only(opened: Device) -> None:
    """mdpy_query_gfx_plane: PROBE|REGION 0, PROBE|DMABUF EINVAL."""
    display = gfx.Display(opened)
    assert display.supports("region")
    assert not display.supports("dmabuf")
    expect_errno(errno.EINVAL, display.query, "dmabuf")


@MDPY_VGA
def test_mdpy_region_plane(opened: Device) -> None:
    """mdpy: 640x480 XRGB8888, stride 2560, size the framebuffer (2 MiB: 640 * 480 * 4 rounded
    up to a power of two),
    in region 16 (offset PAGE_SIZE, RW|MMAP, GET_REGION_INFO)."""
    plane = gfx.Display(opened).query("region")
    assert (plane.drm_format, plane.width, plane.height, plane.stride) == (
        gfx.DRM_FORMAT_XRGB8888, 640, 480, 2560)
    assert (plane.size, plane.region_index, plane.empty) == (2 << 20, 16, False)
    region = opened.region_info(plane.region_index)
    assert (region.offset, region.size) == (4096, 2 << 20)


@MBOCHS_SMALL
def test_mbochs_probe_dmabuf_only(opened: Device) -> None:
    display = gfx.Display(opened)
    assert display.supports("dmabuf")
    assert not display.supports("region")


@MBOCHS_SMALL
def test_mbochs_no_framebuffer_is_an_empty_plane(opened: Device) -> None:
    """mbochs_check_framebuffer: display not enabled -> a zero plane, id 0; so is any plane
    type but PRIMARY."""
    display = gfx.Display(opened)
    assert display.query("dmabuf").empty
    assert display.query("dmabuf").dmabuf_id == 0
    _mode(opened, 800, 600)
    assert display.query("dmabuf", gfx.DRM_PLANE_TYPE_CURSOR).empty


def _dispi(dev: Device, index: int, value: int) -> None:
    dev.write(MMIO, DISPI + 2 * index, struct.pack("<H", value))


def _mode(dev: Device, width: int, height: int, x_offset: int = 0) -> None:
    for index, value in ((XRES, width), (YRES, height), (BPP, 32), (X_OFFSET, x_offset),
                         (ENABLE, 1)):
        _dispi(dev, index, value)


@MBOCHS_SMALL
def test_mbochs_dispi_registers_read_back(opened: Device) -> None:
    """handle_mmio_read/write: 2-byte accesses at 0x500 + 2 * index; ID reads 0xB0C5 after
    mbochs_reset."""
    assert struct.unpack("<H", opened.read(MMIO, DISPI, 2))[0] == 0xB0C5
    _dispi(opened, XRES, 800)
    assert struct.unpack("<H", opened.read(MMIO, DISPI + 2 * XRES, 2))[0] == 800


@MBOCHS_SMALL
def test_mbochs_first_query_of_a_mode_enomem(opened: Device) -> None:
    """Linux 7.3's mbochs_query_gfx_plane drops the buffer it allocates for a new mode: ENOMEM
    first; the same query again finds it (800x600x4, stride 3200, id 1)."""
    display = gfx.Display(opened)
    _mode(opened, 800, 600)
    expect_errno(errno.ENOMEM, display.query, "dmabuf")
    plane = expect_ok(display.query, "dmabuf")
    assert (plane.drm_format, plane.width, plane.height, plane.stride, plane.size) == (
        gfx.DRM_FORMAT_XRGB8888, 800, 600, 3200, 3200 * 600)
    assert plane.dmabuf_id == 1


@MBOCHS_SMALL
def test_mbochs_dmabuf_fd(opened: Device) -> None:
    """mbochs_get_gfx_dmabuf: a new fd each time for a known id; ENOENT for an unknown one."""
    display = gfx.Display(opened)
    _mode(opened, 640, 480)
    expect_errno(errno.ENOMEM, display.query, "dmabuf")
    plane = display.query("dmabuf")
    with display.dmabuf(plane) as a, display.dmabuf(plane.dmabuf_id) as b:
        assert a.fileno() != b.fileno()
    expect_errno(errno.ENOENT, display.dmabuf, plane.dmabuf_id + 1)


@MBOCHS_SMALL
def test_mbochs_unaligned_framebuffer_einval(opened: Device) -> None:
    """mbochs_dmabuf_export: a mode whose offset (x offset * 4) is not page-aligned -> the
    query works, GET_GFX_DMABUF EINVAL."""
    display = gfx.Display(opened)
    _mode(opened, 640, 480, x_offset=16)
    expect_errno(errno.ENOMEM, display.query, "dmabuf")
    plane = display.query("dmabuf")
    assert plane.size == 640 * 4 * 480
    expect_errno(errno.EINVAL, display.dmabuf, plane)


def test_no_display_on_vfio_pci(host: Host) -> None:
    """vfio_pci_core_ioctl: QUERY_GFX_PLANE and GET_GFX_DMABUF are ENOTTY."""
    bdf, number = host.edu, host.edu_group
    with Container(host.kernel) as c, Group(number, kernel=host.kernel) as g:
        g.set_container(c)
        c.set_iommu()
        with g.open_device(bdf) as dev:
            display = gfx.Display(dev)
            assert not display.supports("region")
            expect_errno(errno.ENOTTY, display.query, "region")
            expect_errno(errno.ENOTTY, display.dmabuf, 1)


def test_bad_arguments_refused_before_the_kernel(host: Host) -> None:
    """pyvfio.gfx checks kind, plane type and id itself (ValueError naming them)."""
    display = gfx.Display(None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="kind"):
        display.query("bitmap")
    with pytest.raises(ValueError, match="plane_type"):
        display.query("region", 7)
    with pytest.raises(ValueError, match="dmabuf_id"):
        display.dmabuf(1 << 32)


@pytest.fixture
def parent(host: Host, request: pytest.FixtureRequest) -> Iterator[Kernel]:
    """The kernel with the ``request.param`` sample's parent; removes the mdevs made."""
    driver = request.param
    k = host.kernel
    if host.profile == "fake":
        {"mdpy": add_mdpy, "mbochs": add_mbochs}[driver](k)  # type: ignore[operator]
    if not k.sysfs_exists(f"class/mdev_bus/{driver}"):
        pytest.skip(f"{host.profile}: no {driver} (samples/vfio-mdev; the lane's iommufd-7.3 "
                    "loads it)")
    before = {d["uuid"] for d in mdev.devices(k)}
    yield k
    for d in mdev.devices(k):
        if d["uuid"] not in before:
            mdev.remove(k, d["uuid"])


def _available(k: Kernel, driver: str) -> dict[str, int | None]:
    return {t.type: t.available for t in mdev.types(k, driver)}


@pytest.mark.parametrize("parent", ["mdpy"], indirect=True)
def test_mdpy_four_instances_then_eusers(parent: Kernel) -> None:
    """mdpy has no get_available: the mdev core counts its max_instances (4) over all types,
    and a fifth create is EUSERS (mdev_core.c:mdev_device_create)."""
    assert _available(parent, "mdpy") == {"mdpy-vga": 4, "mdpy-xga": 4, "mdpy-hd": 4}
    made = [mdev.create(parent, "mdpy", t) for t in ("mdpy-vga", "mdpy-xga", "mdpy-hd", "mdpy-hd")]
    assert _available(parent, "mdpy") == {"mdpy-vga": 0, "mdpy-xga": 0, "mdpy-hd": 0}
    expect_errno(errno.EUSERS, mdev.create, parent, "mdpy", "mdpy-vga", U1)
    mdev.remove(parent, made[0])
    assert _available(parent, "mdpy")["mdpy-vga"] == 1


@pytest.mark.parametrize("parent", ["mbochs"], indirect=True)
def test_mbochs_memory_pool(parent: Kernel) -> None:
    """mbochs_get_available: 256 MiB shared, 4/16/64 MiB a type; init ENOSPC when short."""
    assert _available(parent, "mbochs") == {"mbochs-small": 64, "mbochs-medium": 16,
                                            "mbochs-large": 4}
    for _ in range(3):
        mdev.create(parent, "mbochs", "mbochs-large")
    mdev.create(parent, "mbochs", "mbochs-medium")
    assert _available(parent, "mbochs") == {"mbochs-small": 12, "mbochs-medium": 3,
                                            "mbochs-large": 0}
    expect_errno(errno.ENOSPC, mdev.create, parent, "mbochs", "mbochs-large", U1)
