"""pyvfio.open_device and the DMA space on the fake kernel and, in the VM lane, on real Linux.

What the one handle relies on from the kernel, in each of the five IOMMU modes: the mode can be
opened as named, a chosen IOVA lies in the reported IOVA ranges and below the device's DMA mask,
IOMMU_IOAS_MAP without FIXED_IOVA returns a free IOVA, a fixed IOVA that overlaps is EEXIST,
the BAR maps, MSI comes on an eventfd once Bus Master is on, two threads can share one space,
and closing the device releases every fd (the real host's fixture counts them).
"""

from __future__ import annotations

import errno
import itertools
import threading
from collections.abc import Iterator

import pytest

import pyvfio
from tests.conftest import Host
from tests.helpers import expect_errno

EDU_MASK = (1 << 28) - 1


@pytest.fixture(params=pyvfio.IOMMU_MODES)
def dev(host: Host, request: pytest.FixtureRequest) -> Iterator[pyvfio.Device]:
    """The lone edu opened in each mode (skipped where the kernel lacks that mode)."""
    if host.noiommu:
        pytest.skip("noiommu: no IOMMU, no DMA space")
    try:
        device = pyvfio.open_device(host.edu, mode=request.param, kernel=host.kernel)
    except pyvfio.ModeUnavailableError as exc:
        pytest.skip(f"{host.profile}: {exc}")
    except OSError as exc:
        if request.param.endswith("type1") and exc.errno in (errno.ENODEV, errno.EINVAL):
            pytest.skip(f"{host.profile}: {request.param} refused by this kernel ({exc})")
        raise
    with device:
        yield device


def test_the_mode_is_what_was_asked(dev: pyvfio.Device, request: pytest.FixtureRequest) -> None:
    mode = request.node.callspec.params["dev"]
    assert dev.iommu_mode == mode and dev.dma is not None
    assert dev.mode == ("iommufd" if mode == "iommufd" else
                        "compat" if mode.startswith("compat") else "legacy")


def test_chosen_iovas_lie_in_the_ranges_and_below_the_mask(dev: pyvfio.Device) -> None:
    assert dev.dma is not None
    ranges = dev.dma.iova_ranges()
    dev.dma.dma_mask = EDU_MASK
    maps = [dev.dma.allocate(4096 << i) for i in range(4)]
    for m in maps:
        assert m.iova + m.size - 1 <= EDU_MASK
        assert any(r.start <= m.iova and m.iova + m.size - 1 <= r.last for r in ranges)
        assert dev.dma.vaddr(m.iova + 10) == m.vaddr + 10
        assert dev.dma.iova(m.vaddr + 10) == m.iova + 10
    spans = sorted((m.iova, m.iova + m.size) for m in maps)
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))  # no overlap
    assert all(m.iova > 0 for m in maps)
    assert dev.dma.mappings() == sorted(maps, key=lambda m: m.iova)


def test_a_given_iova_that_overlaps_is_eexist(dev: pyvfio.Device) -> None:
    assert dev.dma is not None
    m = dev.dma.allocate(8192)
    expect_errno(errno.EEXIST, dev.dma.map, pyvfio.allocate(4096), m.iova + 4096)
    assert dev.dma.lookup(m.iova) is m and len(dev.dma) == 1
    given = dev.dma.map(pyvfio.allocate(8192), 0x400000)
    assert given.iova == 0x400000 and dev.dma.vaddr(0x401000) == given.vaddr + 0x1000
    chosen = dev.dma.allocate(4096)  # the allocator knows the given IOVA is taken
    assert not 0x400000 <= chosen.iova < 0x402000


def test_bar_interrupt_and_dma_through_the_handle(dev: pyvfio.Device) -> None:
    assert dev.dma is not None
    bar = dev.bar(0)
    assert bar.read(0, 4) & 0xFF == 0xED  # edu's identification register
    dev.enable_bus_master()
    (irq,) = dev.enable_interrupts("msi")
    bar.write(0x60, 4, 0x20)  # raise interrupt bit 5
    assert irq.wait(5.0) == 1
    bar.write(0x64, 4, 0x20)  # acknowledge


def test_two_threads_share_one_space(dev: pyvfio.Device) -> None:
    space = dev.dma
    assert space is not None
    errors: list[BaseException] = []

    def worker() -> None:  # one lock around the table and the ioctl (issue 15 item 3)
        try:
            for _ in range(40):
                a, b = space.allocate(4096), space.allocate(8192)
                assert space.lookup(a.iova) is a and space.iova(b.vaddr) == b.iova
                a.close()
                b.close()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(space) == 0


def test_close_releases_everything_and_twice_is_nothing(host: Host) -> None:
    if host.noiommu:
        pytest.skip("noiommu: no IOMMU, no DMA space")
    dev = pyvfio.open_device(host.edu, kernel=host.kernel)
    dev.enable_bus_master()
    irq = dev.enable_interrupts("msi")[0]
    mapping = dev.dma.allocate(4096) if dev.dma is not None else None
    dev.bar(0)
    dev.close()
    dev.close()
    assert dev.closed and irq.closed and mapping is not None and mapping.closed
    # the group (or the cdev) is free again: it opens once more
    with pyvfio.open_device(host.edu, kernel=host.kernel) as again:
        assert again.mode == dev.mode


def test_the_table_keeps_what_an_unmap_left_mapped(dev: pyvfio.Device) -> None:
    """vfio_iommu_type1.c:vfio_dma_do_unmap: v1 unmaps nothing when a mapping starts below the
    range (0 bytes; v2: EINVAL), the compat IOAS in v1 mode cuts it (vfio_compat.c), iommufd
    says ENOENT: in every mode the table afterwards is what the kernel still maps."""
    space, page = dev.dma, 4096
    assert space is not None
    a = space.map(pyvfio.allocate(2 * page), 1 << 24)
    b = space.map(pyvfio.allocate(page), (1 << 24) + 2 * page)
    try:
        done = space.unmap((1 << 24) + page, 2 * page)  # cuts a, covers b
    except OSError as exc:
        assert exc.errno in (errno.EINVAL, errno.ENOENT) and dev.iommu_mode in (
            "type1v2", "compat-type1v2", "iommufd")
        done = None
    kept = [(m.iova, m.size) for m in space.mappings()]
    if dev.iommu_mode == "type1":
        assert done == 0 and kept == [(1 << 24, 2 * page), ((1 << 24) + 2 * page, page)]
    elif dev.iommu_mode == "compat-type1":
        assert done == 2 * page and kept == [(1 << 24, page)] and b.closed and not a.closed
    else:  # refused, nothing unmapped: a sticks out first (iommufd stops at it, before b)
        assert kept == [(1 << 24, 2 * page), ((1 << 24) + 2 * page, page)]
    for m in space.mappings():
        m.close()
    assert len(space) == 0 and a.closed and b.closed


def test_an_unmap_stopped_midway_forgets_what_went_before(dev: pyvfio.Device) -> None:
    """iommufd (and its compat IOAS in v2 mode) removes areas lowest first and fails with ENOENT
    at the first that sticks out, without rolling back (io_pagetable.c:iopt_unmap_iova_range);
    type1 v1 removes each mapping starting in the range whole; v2 refuses up front."""
    space, page, base = dev.dma, 4096, 1 << 24
    assert space is not None
    a = space.map(pyvfio.allocate(page), base)
    b = space.map(pyvfio.allocate(2 * page), base + page)
    try:
        done: int | None = space.unmap(base, 2 * page)
    except OSError as exc:
        done = -exc.errno
    kept = [(m.iova, m.size) for m in space.mappings()]
    want = {"type1v2": (-errno.EINVAL, [(base, page), (base + page, 2 * page)]),
            "type1": (3 * page, []),
            "compat-type1": (2 * page, [(base + 2 * page, page)]),
            "compat-type1v2": (-errno.ENOENT, [(base + page, 2 * page)]),
            "iommufd": (-errno.ENOENT, [(base + page, 2 * page)])}[str(dev.iommu_mode)]
    assert (done, kept) == want
    assert a.closed == (want[1][:1] != [(base, page)])
    for m in space.mappings():
        m.close()
    assert len(space) == 0 and a.closed and b.closed


def _map_behind_the_space(dev: pyvfio.Device, vaddr: int, iova: int, size: int) -> None:
    """Map with the bare ioctl of the device's mode, so the DMA space's table never sees it."""
    from pyvfio import uapi  # noqa: PLC0415
    from pyvfio._ffi import C, new  # noqa: PLC0415

    space = dev.dma
    if dev.mode == "iommufd":
        arg = new("struct iommu_ioas_map *", ioas_id=space.id, user_va=vaddr,  # type: ignore
                  length=size, iova=iova, flags=C.IOMMU_IOAS_MAP_FIXED_IOVA
                  | C.IOMMU_IOAS_MAP_READABLE | C.IOMMU_IOAS_MAP_WRITEABLE)
        dev._kernel.ioctl(space.iommufd.fileno(), uapi.IOMMU_IOAS_MAP, arg)  # type: ignore
    else:
        arg = new("struct vfio_iommu_type1_dma_map *", vaddr=vaddr, iova=iova, size=size,
                  flags=C.VFIO_DMA_MAP_FLAG_READ | C.VFIO_DMA_MAP_FLAG_WRITE)
        dev._kernel.ioctl(space.fileno(), uapi.VFIO_IOMMU_MAP_DMA, arg)  # type: ignore


def test_a_chosen_iova_steps_over_mappings_made_behind_the_space(dev: pyvfio.Device) -> None:
    """The kernel answers EEXIST for an IOVA pyvfio's allocator chose over a mapping it never
    saw (type1 and iommufd cannot list mappings): the space tries further, below the mask."""
    space, page = dev.dma, 4096
    assert space is not None
    foreign = pyvfio.allocate(8 * page)
    vaddr = int(pyvfio.dma.buffer_address(foreign)[1])
    _map_behind_the_space(dev, vaddr, page, 8 * page)  # where the allocator looks first
    if dev.mode == "iommufd":  # the kernel's own choice is above the mask: pyvfio chooses
        space.allow_iovas([(1 << 30, (1 << 31) - 1)])  # type: ignore[union-attr]
    space.dma_mask = (1 << 24) - 1
    m = space.map(pyvfio.allocate(page))
    assert 9 * page <= m.iova and m.iova + page - 1 <= space.dma_mask
    m.close()
    assert space.unmap(page, 8 * page) == 8 * page  # the table had no part of it
