"""The edu driver (pyvfio.edu) against the fake kernel and, in the VM lane, QEMU's real edu.

Both IOMMU modes: the legacy container (IOVAs from pyvfio's allocator) and iommufd (the kernel's
IOVA choice, checked against edu's 28-bit mask).  DMAs stay <= 4095 bytes (QEMU 7.2 aborts on a
full 4096, DESIGN.md §7).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pyvfio.demo import run_demo
from pyvfio.edu import DMA_MASK, DMA_MAX, REGISTERS, EduDriver
from pyvfio.errors import DriverError, ModeUnavailableError
from tests.conftest import Host


@pytest.fixture(params=["legacy", "iommufd"])
def edu(host: Host, request: pytest.FixtureRequest) -> Iterator[EduDriver]:
    """The lone edu, driven by EduDriver in each IOMMU mode."""
    if host.noiommu:
        pytest.skip("noiommu: DMA needs physical addresses, the driver uses IOVAs")
    bdf = host.edu
    try:
        driver = EduDriver.open(bdf, request.param, kernel=host.kernel, timeout=5.0)
    except DriverError as exc:
        if isinstance(exc.cause, ModeUnavailableError):
            pytest.skip(f"{host.profile}: {exc.cause}")
        raise
    with driver:
        assert driver.mode == request.param
        yield driver


def test_edu_driver_identifies_device(edu: EduDriver) -> None:
    ident = edu.identify()
    assert ident.raw & 0xFFFF == 0x00ED and ident.major == 1


def test_edu_driver_liveness_inverts(edu: EduDriver) -> None:
    assert edu.check_liveness(0x12345678)
    assert edu.check_liveness(0)


def test_edu_driver_factorial_with_completion_interrupt(edu: EduDriver) -> None:
    assert edu.factorial(10) == 3628800
    assert edu.factorial(13) == 6227020800 & 0xFFFFFFFF  # the device computes modulo 2**32


def test_edu_driver_raise_and_acknowledge(edu: EduDriver) -> None:
    assert edu.raise_irq(0x40) & 0x40
    assert edu.regs.read("irq_status") == 0  # acknowledged


def test_edu_driver_dma_round_trip_4095_bytes(edu: EduDriver) -> None:
    data = bytes(i * 13 % 256 for i in range(DMA_MAX))
    edu.dma_to_device(data)
    assert edu.dma_from_device(DMA_MAX) == data
    assert edu.mapping.iova + edu.mapping.size - 1 <= DMA_MASK


def test_edu_driver_dma_at_offset(edu: EduDriver) -> None:
    edu.dma_to_device(b"pyvfio", offset=1000)
    assert edu.dma_from_device(6, offset=1000) == b"pyvfio"


def test_edu_driver_refuses_full_4096_byte_dma(edu: EduDriver) -> None:
    with pytest.raises(ValueError, match="4095"):
        edu.dma_to_device(bytes(4096))


def test_edu_driver_without_bus_master_interrupt_never_comes(edu: EduDriver) -> None:
    edu.config.disable_bus_master()
    edu.timeout = 0.5
    with pytest.raises(DriverError, match="interrupt never came") as info:
        edu.raise_irq(0x2)
    assert info.value.step == "raise interrupt" and "bus mastering is off" in str(info.value.hint)
    edu.config.enable_bus_master()
    edu.regs.write("irq_ack", 0x2)
    with pytest.raises(DriverError, match="bus mastering is off"):
        edu.config.disable_bus_master()
        edu.dma_to_device(b"x")


def test_edu_registers_ignore_wrong_widths(edu: EduDriver) -> None:
    """Below 0x80 only 4-byte accesses count (edu_mmio_read/write): a 2-byte read does not see
    the register (QEMU answers it as an invalid access) and a 2-byte write is dropped."""
    mmio, live = edu.regs.mmio, REGISTERS["liveness"].offset
    assert mmio.read(REGISTERS["ident"].offset, 2) == 0  # memory_region_access_valid fails:
    # QEMU's unassigned_mem_read answers 0 (edu's .valid.min_access_size is 4)
    assert mmio.read(REGISTERS["ident"].offset, 4) & 0xFF == 0xED
    edu.regs.write("liveness", 0x0F0F0F0F)
    mmio.write(live, 2, 0x1234)
    assert edu.regs.read("liveness") == 0xF0F0F0F0


@pytest.mark.parametrize("mode", ["legacy", "iommufd"])
def test_demo_runs_every_step(host: Host, mode: str) -> None:
    """What `pyvfio demo --device BDF --mode MODE` runs, on this kernel."""
    if host.noiommu:
        pytest.skip("noiommu: DMA needs physical addresses")
    if mode == "iommufd" and not host.kernel.exists("/dev/iommu"):
        pytest.skip(f"{host.profile}: no /dev/iommu")
    ok, data = run_demo(host.kernel, host.edu, mode, 5.0)
    print("\n".join(f"{s['ms']:9.3f} ms  {s['name']}" for s in data["steps"]))
    assert ok, data["steps"][-1]
    assert data["mode"] == mode and all(s["ok"] for s in data["steps"])
