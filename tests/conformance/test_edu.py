"""QEMU edu through vfio-pci end to end: DMA through the IOMMU, MSI and INTx on eventfds.

Devices: docs/specs/edu.rst and hw/misc/edu.c (QEMU 7.2: DMA <= 4095 bytes, 28-bit mask, done
after ~100 ms).  Kernel: vfio_iommu_type1.c maps, vfio_pci_intrs.c eventfds; bus master must be
set by the driver (vfio-pci leaves it off).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from pyvfio._ffi import C
from pyvfio.kernel import MMIO
from tests.conformance.irq_helpers import EVENTFD, INTX, MSI, NONE, TRIGGER, set_irqs, wait_event
from tests.conformance.vfio_helpers import (
    MASTER,
    MEMORY,
    PCI_COMMAND,
    Session,
    buffer,
    cfg_read,
    cfg_write,
    dma_map,
    dma_unmap,
    region_offset,
    session,
    set_command,
)
from tests.conftest import Host

SRC, DST, CNT, CMD = 0x80, 0x88, 0x90, 0x98
RUN, TO_RAM, IRQ = 0x1, 0x2, 0x4
EDU_BUF = 0x40000
IRQ_STATUS, IRQ_RAISE, IRQ_ACK = 0x24, 0x60, 0x64
IOVA_IN, IOVA_OUT = 0x100000, 0x200000
LENGTH = 2048


@pytest.fixture
def edu(host: Host) -> Iterator[tuple[Session, int, int, MMIO]]:
    """The lone edu opened, MEMORY and MASTER on, BAR0 mapped: (session, container, dev, bar)."""
    if host.noiommu:
        pytest.skip("noiommu: DMA needs physical addresses")
    with session(host) as s:
        c, _, d = s.edu()
        set_command(host, d, MEMORY | MASTER)
        bar = s.k.mmap(d, 0x1000, region_offset(0))
        s.maps.append(bar)
        yield s, c, d, bar


def run_dma(bar: MMIO, src: int, dst: int, count: int, cmd: int) -> None:
    """Program edu's DMA engine and poll until RUN clears (edu.c:edu_dma_timer)."""
    bar.write(SRC, 8, src)
    bar.write(DST, 8, dst)
    bar.write(CNT, 8, count)
    bar.write(CMD, 8, cmd | RUN)
    deadline = time.monotonic() + 5
    while bar.read(CMD, 8) & RUN:
        assert time.monotonic() < deadline, "edu DMA did not complete"
        time.sleep(0.01)


def test_edu_dma_round_trip(edu: tuple[Session, int, int, MMIO]) -> None:
    """RAM -> edu -> RAM through type1 mappings lands the bytes in the other buffer."""
    s, c, _, bar = edu
    src, dst = buffer(), buffer()
    src[:LENGTH] = bytes(range(256)) * (LENGTH // 256)
    dma_map(s.host, c, src, IOVA_IN, flags=C.VFIO_DMA_MAP_FLAG_READ)
    dma_map(s.host, c, dst, IOVA_OUT)
    run_dma(bar, IOVA_IN, EDU_BUF, LENGTH, 0)
    run_dma(bar, EDU_BUF, IOVA_OUT, LENGTH, TO_RAM)
    assert dst[:LENGTH] == src[:LENGTH]
    dma_unmap(s.host, c, 0, 0, C.VFIO_DMA_UNMAP_FLAG_ALL)


def test_edu_dma_to_unmapped_iova_blocked(edu: tuple[Session, int, int, MMIO]) -> None:
    """The IOMMU blocks a device write to an IOVA that is not mapped: the page stays untouched."""
    s, c, _, bar = edu
    src, victim = buffer(), buffer()
    src[:LENGTH] = b"\xab" * LENGTH
    victim[:LENGTH] = b"\x11" * LENGTH
    dma_map(s.host, c, src, IOVA_IN, flags=C.VFIO_DMA_MAP_FLAG_READ)
    dma_map(s.host, c, victim, IOVA_OUT)
    dma_unmap(s.host, c, IOVA_OUT, 0x1000)
    run_dma(bar, IOVA_IN, EDU_BUF, LENGTH, 0)
    run_dma(bar, EDU_BUF, IOVA_OUT, LENGTH, TO_RAM)
    assert victim[:LENGTH] == b"\x11" * LENGTH
    dma_unmap(s.host, c, IOVA_IN, 0x1000)


def test_edu_dma_to_readonly_mapping_blocked(edu: tuple[Session, int, int, MMIO]) -> None:
    """A mapping without WRITE permission blocks the device's write."""
    s, c, _, bar = edu
    ro = buffer()
    ro[:16] = b"\x22" * 16
    dma_map(s.host, c, ro, IOVA_OUT, flags=C.VFIO_DMA_MAP_FLAG_READ)
    run_dma(bar, EDU_BUF, IOVA_OUT, 16, TO_RAM)
    assert ro[:16] == b"\x22" * 16
    dma_unmap(s.host, c, IOVA_OUT, 0x1000)


def test_edu_msi(edu: tuple[Session, int, int, MMIO]) -> None:
    """edu_raise_irq with MSI enabled signals the MSI eventfd (vfio_msi_interrupt)."""
    s, _, d, bar = edu
    efd = s.track(s.k.eventfd())
    set_irqs(s.host, d, MSI, EVENTFD | TRIGGER, fds=[efd])
    bar.write(IRQ_RAISE, 4, 0x1)
    assert wait_event(s.host, efd) >= 1
    assert bar.read(IRQ_STATUS, 4) == 0x1
    bar.write(IRQ_ACK, 4, 0x1)
    set_irqs(s.host, d, MSI, NONE | TRIGGER, count=0)


def test_edu_dma_completion_msi(edu: tuple[Session, int, int, MMIO]) -> None:
    """A DMA with the IRQ bit raises DMA_IRQ (0x100) by MSI on completion."""
    s, c, d, bar = edu
    efd = s.track(s.k.eventfd())
    set_irqs(s.host, d, MSI, EVENTFD | TRIGGER, fds=[efd])
    buf = buffer()
    dma_map(s.host, c, buf, IOVA_IN)
    run_dma(bar, IOVA_IN, EDU_BUF, 64, IRQ)
    assert wait_event(s.host, efd) >= 1
    assert bar.read(IRQ_STATUS, 4) & 0x100
    bar.write(IRQ_ACK, 4, 0x100)
    set_irqs(s.host, d, MSI, NONE | TRIGGER, count=0)
    dma_unmap(s.host, c, IOVA_IN, 0x1000)


def test_edu_intx_automask_and_unmask(edu: tuple[Session, int, int, MMIO]) -> None:
    """INTx is AUTOMASKED (vfio_intx_handler): one signal per assertion until UNMASK; after the
    driver acks the device and unmasks, the next raise fires again."""
    s, _, d, bar = edu
    efd = s.track(s.k.eventfd())
    set_irqs(s.host, d, INTX, EVENTFD | TRIGGER, fds=[efd])
    bar.write(IRQ_RAISE, 4, 0x1)
    assert wait_event(s.host, efd) == 1
    bar.write(IRQ_ACK, 4, 0x1)
    bar.write(IRQ_RAISE, 4, 0x1)
    assert wait_event(s.host, efd, timeout=0.3) == 0  # still masked
    bar.write(IRQ_ACK, 4, 0x1)
    set_irqs(s.host, d, INTX, NONE | C.VFIO_IRQ_SET_ACTION_UNMASK, count=1)
    bar.write(IRQ_RAISE, 4, 0x1)
    assert wait_event(s.host, efd) == 1
    bar.write(IRQ_ACK, 4, 0x1)
    set_irqs(s.host, d, INTX, NONE | C.VFIO_IRQ_SET_ACTION_UNMASK, count=1)
    set_irqs(s.host, d, INTX, NONE | TRIGGER, count=0)


def test_edu_factorial_irq(edu: tuple[Session, int, int, MMIO]) -> None:
    """edu_fact_thread: with status bit 0x80 set, a finished factorial raises FACT_IRQ."""
    s, _, d, bar = edu
    efd = s.track(s.k.eventfd())
    set_irqs(s.host, d, MSI, EVENTFD | TRIGGER, fds=[efd])
    bar.write(0x20, 4, 0x80)
    bar.write(0x08, 4, 5)
    assert wait_event(s.host, efd) >= 1
    assert bar.read(0x08, 4) == 120
    bar.write(IRQ_ACK, 4, 0x1)
    bar.write(0x20, 4, 0)
    set_irqs(s.host, d, MSI, NONE | TRIGGER, count=0)


def test_edu_msi_dropped_without_bus_master(edu: tuple[Session, int, int, MMIO]) -> None:
    """MSI is a memory write: with COMMAND.MASTER clear it is dropped (vm-lane pitfall 4)."""
    s, _, d, bar = edu
    command = cfg_read(s.host, d, PCI_COMMAND, 2)
    cfg_write(s.host, d, PCI_COMMAND, 2, command & ~MASTER)
    efd = s.track(s.k.eventfd())
    set_irqs(s.host, d, MSI, EVENTFD | TRIGGER, fds=[efd])
    bar.write(IRQ_RAISE, 4, 0x1)
    assert wait_event(s.host, efd, timeout=0.3) == 0
    bar.write(IRQ_ACK, 4, 0x1)
    set_irqs(s.host, d, MSI, NONE | TRIGGER, count=0)
    cfg_write(s.host, d, PCI_COMMAND, 2, command)


@pytest.mark.fake_only("QEMU 7.2 aborts on this DMA; the fake refuses it and records why")
def test_edu_full_page_dma_refused(edu: tuple[Session, int, int, MMIO]) -> None:
    """edu.c (7.2) edu_check_range is off by one: a 4096-byte DMA hw_errors; the model skips it."""
    s, c, _, bar = edu
    buf = buffer()
    buf[:4] = b"\x55" * 4
    dma_map(s.host, c, buf, IOVA_OUT)
    run_dma(bar, EDU_BUF, IOVA_OUT, 4096, TO_RAM)
    assert buf[:4] == b"\x55" * 4
    assert "QEMU 7.2 aborts" in s.k.bus.devices[s.host.edu].errors[-1]  # type: ignore[attr-defined]
    dma_unmap(s.host, c, IOVA_OUT, 0x1000)
