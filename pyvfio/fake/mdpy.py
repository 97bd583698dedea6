"""The ``mdpy`` sample of Linux 7.3 (samples/vfio-mdev/mdpy.c): a display mdev with a region plane.

Modelled (the mdev core's part in :mod:`pyvfio.fake.mdev_parent`, the shared device-file part in
:mod:`pyvfio.fake.mdev_file`):

* the parent ``mdpy`` with types ``mdpy-vga`` (640x480), ``mdpy-xga`` (1024x768) and ``mdpy-hd``
  (1920x1080), all XRGB8888, 4 bytes a pixel; no get_available, so the mdev core counts the
  driver's ``max_instances`` = 4 for all types together (EUSERS when none are left);
* the framebuffer: ``roundup_pow_of_two(width * height * 4)`` bytes, a gray gradient (row ``i``
  is ``i * 255 / height``) at create and at each RESET (mdpy_reset);
* GET_REGION_INFO: config (offset 0, 0xff bytes, RW); BAR0 and the display region 16 (offset
  PAGE_SIZE, the framebuffer's size, RW|MMAP); every other index below 9 size 0, flags 0; 9
  and above (but 16) EINVAL;
* QUERY_GFX_PLANE (pyvfio/fake/gfx_plane.py): kind REGION, the type's format and size, stride
  width * 4, size the framebuffer's, ``region_index`` 16;
* read/write: config, and the framebuffer at PAGE_SIZE (mdpy's mdev_access copies to and from
  the framebuffer's first bytes whatever the offset: kept as Linux 7.3 has it); else EFAULT;
  SET_IRQS EINVAL; GET_IRQ_INFO count 0.

Not modelled: mmap of the framebuffer (EINVAL here); the vendor capability's writes.
"""

from __future__ import annotations

import errno
import struct

from pyvfio._ffi import C
from pyvfio.fake import gfx_plane
from pyvfio.fake.kernel import FakeKernel
from pyvfio.fake.mdev_file import SampleMdevFile, SampleMdevModel
from pyvfio.fake.mdev_parent import MdevParent
from pyvfio.fake.memory import kerr
from pyvfio.fake.uaccess import IoctlArg

PAGE_SIZE, CONFIG_SIZE, DISPLAY_REGION, MAX_INSTANCES = 4096, 0xFF, 16, 4
TYPES = {"vga": (640, 480), "xga": (1024, 768), "hd": (1920, 1080)}
BYTEPP = 4
_RW = C.VFIO_REGION_INFO_FLAG_READ | C.VFIO_REGION_INFO_FLAG_WRITE


def _vconfig(width: int, height: int) -> bytearray:
    """mdpy_create_config_space: 1b36:000f, display class, BAR0 32-bit prefetchable memory,
    a vendor capability at 0x40 with format, width and height."""
    cfg = bytearray(CONFIG_SIZE)
    struct.pack_into("<HHHH", cfg, 0, 0x1B36, 0x000F, 0x0003, 0x0010)  # then status below
    struct.pack_into("<HHII", cfg, 0x2C, 0x1AF4, 0x1100, 0, 0)
    struct.pack_into("<H", cfg, 0x0A, 0x0380)
    cfg[0x08] = 0x01
    struct.pack_into("<I", cfg, 0x10, 0x08)
    cfg[0x34] = 0x40
    cfg[0x40:0x43] = bytes([0x09, 0x00, 0x10])
    struct.pack_into("<III", cfg, 0x44, gfx_plane.DRM_FORMAT_XRGB8888, width, height)
    return cfg


class MdpyFile(SampleMdevFile):
    """mdpy_dev_ops."""

    def VFIO_DEVICE_GET_REGION_INFO(self, arg: IoctlArg) -> int:  # noqa: N802
        info = arg.cmd
        if info.index >= C.VFIO_PCI_NUM_REGIONS and info.index != DISPLAY_REGION:
            raise kerr(errno.EINVAL)
        if info.index == C.VFIO_PCI_CONFIG_REGION_INDEX:
            info.offset, info.size, info.flags = 0, CONFIG_SIZE, _RW
        elif info.index in (C.VFIO_PCI_BAR0_REGION_INDEX, DISPLAY_REGION):
            info.offset, info.size = PAGE_SIZE, self.model.memsize
            info.flags = _RW | C.VFIO_REGION_INFO_FLAG_MMAP
        else:
            info.offset, info.size, info.flags = 0, 0, 0
        arg.reply_caps([], C.VFIO_REGION_INFO_FLAG_CAPS)
        return 0

    def VFIO_DEVICE_GET_IRQ_INFO(self, arg: IoctlArg) -> int:  # noqa: N802
        info = arg.cmd
        if info.index >= self.model.dev_info_num_irqs:
            raise kerr(errno.EINVAL)
        info.count = 0  # mdpy_get_irq_info: no interrupts (flags as the caller gave them)
        arg.copy_out(info, 16)
        return 0

    def VFIO_DEVICE_SET_IRQS(self, arg: IoctlArg) -> int:  # noqa: N802
        raise kerr(errno.EINVAL)

    def VFIO_DEVICE_RESET(self, arg: IoctlArg) -> int:  # noqa: N802
        self.model.fill_gradient()
        return 0

    def VFIO_DEVICE_QUERY_GFX_PLANE(self, arg: IoctlArg) -> int:  # noqa: N802
        m = self.model
        return gfx_plane.query(arg, C.VFIO_GFX_PLANE_TYPE_REGION, lambda _type: (
            gfx_plane.DRM_FORMAT_XRGB8888, m.width, m.height, m.width * BYTEPP, m.memsize,
            DISPLAY_REGION))

    def access(self, pos: int, width: int, chunk: bytes | None) -> bytes:
        m = self.model
        if pos < CONFIG_SIZE:
            if chunk is None:
                return bytes(m.vconfig[pos:pos + width].ljust(width, b"\0"))
            if pos == 0x10:  # handle_pci_cfg_write: BAR0 only
                addr = int.from_bytes(chunk.ljust(4, b"\0")[:4], "little")
                addr = addr & m.bar_mask if addr == 0xFFFFFFFF else addr & ~0xF
                struct.pack_into("<I", m.vconfig, 0x10, addr | (m.vconfig[0x10] & 0xF))
            return b""
        if pos >= PAGE_SIZE and pos + width <= PAGE_SIZE + m.memsize:
            if chunk is None:
                return bytes(m.memblk[:width])  # mdev_access ignores the offset (see above)
            m.memblk[:width] = chunk
            return b""
        raise kerr(errno.EFAULT)


class MdpyModel(SampleMdevModel):
    """``struct mdev_state`` of one mdpy mdev."""

    vfio_file = MdpyFile

    def __init__(self, uid: str, width: int, height: int) -> None:
        memsize = 1 << (width * height * BYTEPP - 1).bit_length()
        super().__init__(uid, _vconfig(width, height))
        self.width, self.height, self.memsize = width, height, memsize
        self.bar_mask = (-memsize) & 0xFFFFFFFF
        self.memblk = bytearray(memsize)
        self.fill_gradient()

    def fill_gradient(self) -> None:
        """mdpy_reset: row i gray i * 255 / height."""
        stride = self.width * BYTEPP
        for i in range(self.height):
            self.memblk[i * stride:(i + 1) * stride] = bytes([i * 255 // self.height]) * stride


class _Mdpy(MdevParent):
    def __init__(self, kernel: FakeKernel) -> None:
        super().__init__(kernel, "mdpy", {t: f"mdpy-{t}" for t in TYPES}, MAX_INSTANCES)

    def make(self, mdev_type: str, uid: str) -> MdpyModel:
        return MdpyModel(uid, *TYPES[mdev_type])


def add_mdpy(kernel: FakeKernel) -> None:
    """Give ``kernel`` the mdpy sample's parent device (as ``modprobe mdpy`` does)."""
    _Mdpy(kernel).install()
