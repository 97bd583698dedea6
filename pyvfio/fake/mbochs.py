"""The ``mbochs`` sample of Linux 7.3 (samples/vfio-mdev/mbochs.c): a display with dma-buf planes.

Modelled (the mdev core's part in :mod:`pyvfio.fake.mdev_parent`, the shared device-file part in
:mod:`pyvfio.fake.mdev_file`):

* the parent ``mbochs`` with types ``mbochs-small`` (4 MiB), ``-medium`` (16) and ``-large``
  (64) drawing on the module's ``count`` of 256 MiB: ``available_instances`` = MiB left //
  the type's MiB, ENOSPC at create when short (mbochs_init_dev);
* regions: config (offset 0, 0xff bytes), BAR0 the video memory (offset 3 pages, RW|MMAP),
  BAR2 the MMIO page (offset PAGE_SIZE, RW), region 9 the EDID page (offset 2 pages, RW|CAPS
  with the GFX/EDID type capability); others size 0; 10 and above EINVAL;
* the bochs dispi registers at MMIO 0x500 + 2 * index (2-byte accesses only; others ignored,
  reading 0);
* QUERY_GFX_PLANE of kind DMABUF (mbochs_query_gfx_plane): for a PRIMARY plane with the
  display enabled at 32 bpp, at least 64x64, fitting the memory, the mode's buffer (format,
  size, stride = max(virt_width, xres) * 4, ``dmabuf_id``); otherwise (or another plane type) a
  zero plane.  A mode seen for the first time answers ENOMEM: Linux 7.3's query drops the
  buffer it allocates (``mbochs_dmabuf_alloc``'s result is not kept), and the next query of
  that mode finds it;
* GET_GFX_DMABUF: ENOENT for an unknown id, EINVAL when the mode's offset (x/y offset
  registers) is not page-aligned (mbochs_dmabuf_export), else a new dma-buf fd each time.

Not modelled: the video memory's contents through the dma-buf (the fake's dma-buf has no pages
to mmap), the EDID registers and blob (the EDID page reads 0), mmap of BAR0.
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
from pyvfio.fake.uaccess import FakeFile, IoctlArg

PAGE_SIZE, CONFIG_SIZE, EDID_INDEX = 4096, 0xFF, C.VFIO_PCI_NUM_REGIONS
MMIO_OFFSET, EDID_OFFSET, MEMORY_OFFSET = PAGE_SIZE, 2 * PAGE_SIZE, 3 * PAGE_SIZE
TYPES = {"small": 4, "medium": 16, "large": 64}  # MiB of video memory
MAX_MBYTES = 256  # module parameter ``count``
ID, XRES, YRES, BPP, ENABLE, VIRT_WIDTH, X_OFFSET, Y_OFFSET = 0, 1, 2, 3, 4, 6, 8, 9
VIDEO_MEMORY_64K, COUNT = 10, 11
DISPI_ENABLED, DISPI_ID5 = 0x01, 0xB0C5
_RW = C.VFIO_REGION_INFO_FLAG_READ | C.VFIO_REGION_INFO_FLAG_WRITE


class GfxDmaBufFile(FakeFile):
    """An exported mbochs framebuffer (``size`` bytes of the mode)."""

    kind = "dma-buf"

    def __init__(self, dmabuf_id: int, size: int) -> None:
        self.dmabuf_id, self.size = dmabuf_id, size


class MbochsFile(SampleMdevFile):
    """mbochs_dev_ops."""

    def VFIO_DEVICE_GET_REGION_INFO(self, arg: IoctlArg) -> int:  # noqa: N802
        info, m = arg.cmd, self.model
        if info.index > EDID_INDEX:
            raise kerr(errno.EINVAL)
        caps: list[tuple[int, int, bytes]] = []
        layout = {C.VFIO_PCI_CONFIG_REGION_INDEX: (0, CONFIG_SIZE, _RW),
                  C.VFIO_PCI_BAR0_REGION_INDEX: (MEMORY_OFFSET, m.memsize,
                                                 _RW | C.VFIO_REGION_INFO_FLAG_MMAP),
                  C.VFIO_PCI_BAR2_REGION_INDEX: (MMIO_OFFSET, PAGE_SIZE, _RW),
                  EDID_INDEX: (EDID_OFFSET, PAGE_SIZE, _RW | C.VFIO_REGION_INFO_FLAG_CAPS)}
        info.offset, info.size, info.flags = layout.get(info.index, (0, 0, 0))
        if info.index == EDID_INDEX:
            caps.append((C.VFIO_REGION_INFO_CAP_TYPE, 1, struct.pack(
                "<II", C.VFIO_REGION_TYPE_GFX, C.VFIO_REGION_SUBTYPE_GFX_EDID)))
        arg.reply_caps(caps, C.VFIO_REGION_INFO_FLAG_CAPS)
        return 0

    def VFIO_DEVICE_GET_IRQ_INFO(self, arg: IoctlArg) -> int:  # noqa: N802
        info = arg.cmd
        if info.index >= self.model.dev_info_num_irqs:
            raise kerr(errno.EINVAL)
        info.count = 0
        arg.copy_out(info, 16)
        return 0

    def VFIO_DEVICE_SET_IRQS(self, arg: IoctlArg) -> int:  # noqa: N802
        raise kerr(errno.EINVAL)

    def VFIO_DEVICE_RESET(self, arg: IoctlArg) -> int:  # noqa: N802
        self.model.reset_dispi()
        return 0

    def VFIO_DEVICE_QUERY_GFX_PLANE(self, arg: IoctlArg) -> int:  # noqa: N802
        return gfx_plane.query(arg, C.VFIO_GFX_PLANE_TYPE_DMABUF, self._plane)

    def _plane(self, plane_type: int) -> tuple[int, ...]:
        m = self.model
        mode = m.framebuffer() if plane_type == gfx_plane.DRM_PLANE_TYPE_PRIMARY else None
        if mode is None:
            return (0, 0, 0, 0, 0, 0)
        if mode not in m.dmabufs:
            m.dmabufs[mode] = m.next_id  # allocated, then lost to the caller: see above
            m.next_id += 1
            raise kerr(errno.ENOMEM)
        _, width, height, stride, size = mode
        return (gfx_plane.DRM_FORMAT_XRGB8888, width, height, stride, size, m.dmabufs[mode])

    def VFIO_DEVICE_GET_GFX_DMABUF(self, arg: IoctlArg) -> int:  # noqa: N802
        (dmabuf_id,) = struct.unpack("<I", arg.read(0, 4))
        mode = next((md for md, i in self.model.dmabufs.items() if i == dmabuf_id), None)
        if mode is None:
            raise kerr(errno.ENOENT)
        offset, _, _, _, size = mode
        if offset % PAGE_SIZE:
            raise kerr(errno.EINVAL)  # mbochs_dmabuf_export: not page-aligned
        assert self.install_fd is not None
        return int(self.install_fd(GfxDmaBufFile(dmabuf_id, size)))

    def access(self, pos: int, width: int, chunk: bytes | None) -> bytes:
        m = self.model
        if pos < CONFIG_SIZE:
            if chunk is None:
                return bytes(m.vconfig[pos:pos + width].ljust(width, b"\0"))
            return b""  # BAR sizing of handle_pci_cfg_write: not modelled
        if pos >= MMIO_OFFSET and pos + width <= MMIO_OFFSET + PAGE_SIZE:
            reg = pos - MMIO_OFFSET
            index = (reg - 0x500) // 2
            dispi = 0x500 <= reg <= 0x515 and width == 2 and index < COUNT
            if chunk is None:
                return struct.pack("<H", m.vbe[index]) if dispi else bytes(width)
            if dispi:
                m.vbe[index] = int.from_bytes(chunk, "little")
            return b""
        if pos >= EDID_OFFSET and pos + width <= EDID_OFFSET + PAGE_SIZE:
            return bytes(width) if chunk is None else b""
        if pos >= MEMORY_OFFSET and pos + width <= MEMORY_OFFSET + m.memsize:
            return bytes(width) if chunk is None else b""  # video memory: not kept
        raise kerr(errno.EFAULT)


class MbochsModel(SampleMdevModel):
    """``struct mdev_state`` of one mbochs mdev."""

    vfio_file = MbochsFile

    def __init__(self, uid: str, mbytes: int) -> None:
        cfg = bytearray(CONFIG_SIZE)
        struct.pack_into("<HHH", cfg, 0, 0x1234, 0x1111, 0x0003)
        struct.pack_into("<BHI", cfg, 0x09, 0, 0x0380, 0)  # rev below, display class
        cfg[0x08] = 0x01
        struct.pack_into("<IIIII", cfg, 0x10, 0x08, 0, 0x00, 0, 0)
        struct.pack_into("<HH", cfg, 0x2C, 0x1AF4, 0x1100)
        super().__init__(uid, cfg)
        self.mbytes, self.memsize = mbytes, mbytes << 20
        self.vbe = [0] * COUNT
        self.reset_dispi()
        self.dmabufs: dict[tuple[int, int, int, int, int], int] = {}  # mode -> id
        self.next_id = 1

    def reset_dispi(self) -> None:
        """mbochs_reset: registers cleared but the id (0xB0C5) and the 64 KiB count."""
        self.vbe[:] = [0] * COUNT
        self.vbe[ID], self.vbe[VIDEO_MEMORY_64K] = DISPI_ID5, self.memsize >> 16

    def framebuffer(self) -> tuple[int, int, int, int, int] | None:
        """mbochs_check_framebuffer: (offset, width, height, stride, size) or None."""
        vbe = self.vbe
        if not vbe[ENABLE] & DISPI_ENABLED or vbe[BPP] != 32:
            return None
        width, height = vbe[XRES], vbe[YRES]
        stride = max(vbe[VIRT_WIDTH], width) * 4
        size, offset = stride * height, vbe[X_OFFSET] * 4 + vbe[Y_OFFSET] * stride
        if width < 64 or height < 64 or offset + size > self.memsize:
            return None
        return offset, width, height, stride, size


class _Mbochs(MdevParent):
    def __init__(self, kernel: FakeKernel) -> None:
        super().__init__(kernel, "mbochs", {t: f"mbochs-{t}" for t in TYPES})
        self.avail_mbytes = MAX_MBYTES

    def available(self, mdev_type: str) -> int:
        """mbochs_get_available."""
        return self.avail_mbytes // TYPES[mdev_type]

    def make(self, mdev_type: str, uid: str) -> MbochsModel:
        """mbochs_init_dev: ENOSPC when the module's memory is short."""
        if self.avail_mbytes < TYPES[mdev_type]:
            raise kerr(errno.ENOSPC)
        self.avail_mbytes -= TYPES[mdev_type]
        return MbochsModel(uid, TYPES[mdev_type])

    def unmake(self, mdev_type: str, model: object) -> None:
        self.avail_mbytes += TYPES[mdev_type]


def add_mbochs(kernel: FakeKernel) -> None:
    """Give ``kernel`` the mbochs sample's parent device (as ``modprobe mbochs`` does)."""
    _Mbochs(kernel).install()
