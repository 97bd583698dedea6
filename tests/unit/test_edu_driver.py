"""pyvfio.edu on the fake kernel: each step, the errors a driver author sees, access widths."""

from __future__ import annotations

import asyncio
import select

import pytest

from pyvfio.container import Container
from pyvfio.edu import DMA_MAX, EduDriver
from pyvfio.errors import DriverError
from pyvfio.fake import FakeKernel
from pyvfio.fake.edu import Edu
from pyvfio.group import Group
from pyvfio.irq import EventFD


@pytest.fixture
def kernel(fake_kernel: FakeKernel) -> FakeKernel:
    return fake_kernel  # the pytest plugin's (pyvfio.testing): iommufd on, leak check at teardown


def _model(k: FakeKernel) -> Edu:
    model = k.bus.devices[str(k.labels["edu"])]
    assert isinstance(model, Edu)
    return model


@pytest.mark.parametrize("mode", ["legacy", "iommufd"])
def test_driver_uses_only_the_widths_edu_accepts(kernel: FakeKernel, mode: str) -> None:
    with EduDriver.open(str(kernel.labels["edu"]), mode, kernel=kernel) as edu:
        edu.factorial(5)
        edu.raise_irq()
        edu.dma_to_device(b"x" * 100)
        assert edu.dma_from_device(100) == b"x" * 100
    assert _model(kernel).accesses  # the loop below checks something
    for _, offset, width in _model(kernel).accesses:
        assert width == (8 if offset >= 0x80 else 4), (offset, width)
    assert not _model(kernel).errors


def test_driver_works_on_a_device_opened_by_hand(kernel: FakeKernel) -> None:
    with Container(kernel) as container, Group(kernel.labels["edu_group"], kernel=kernel) as g:
        g.set_container(container)
        container.set_iommu()
        device = g.open_device(str(kernel.labels["edu"]))
        with EduDriver(device) as edu:
            assert edu.mode == "unknown" and edu.factorial(3) == 6
            assert device.dma is container
            edu.dma_to_device(bytes(range(200)), offset=DMA_MAX - 200)
            assert edu.dma_from_device(200, offset=DMA_MAX - 200) == bytes(range(200))
        assert not container.mappings()  # a driver on a borrowed device unmaps its buffer


def test_driver_respects_the_28_bit_mask(kernel: FakeKernel) -> None:
    with EduDriver.open(str(kernel.labels["edu"]), kernel=kernel) as edu:
        assert edu.mapping.iova + 4095 < 1 << 28


def test_dma_span_checked_before_the_device_sees_it(kernel: FakeKernel) -> None:
    with EduDriver.open(str(kernel.labels["edu"]), kernel=kernel) as edu:
        for offset, count in ((0, 4096), (4000, 96), (-1, 4), (0, 0)):
            with pytest.raises(ValueError, match="4095"):
                edu.dma_from_device(count, offset)
    assert not _model(kernel).errors


def test_missing_mapping_is_named(kernel: FakeKernel) -> None:
    with EduDriver.open(str(kernel.labels["edu"]), "legacy", kernel=kernel) as edu:
        edu.mapping.close()
        with pytest.raises(DriverError, match="mapping missing") as info:
            edu.dma_to_device(b"abc")
        assert info.value.step == "translate"


def test_bus_master_off_is_the_hint_when_no_interrupt_comes(kernel: FakeKernel) -> None:
    with EduDriver.open(str(kernel.labels["edu"]), kernel=kernel, timeout=0.05) as edu:
        edu.config.disable_bus_master()
        with pytest.raises(DriverError, match="factorial: interrupt never came") as info:
            edu.factorial(4)
        assert "bus mastering is off" in (info.value.hint or "")
        assert info.value.errno is None


def test_kernel_refusal_keeps_its_errno(kernel: FakeKernel) -> None:
    kernel.inject("VFIO_DEVICE_SET_IRQS", 5)
    with pytest.raises(DriverError, match=r"^enable MSI") as info:
        EduDriver.open(str(kernel.labels["edu"]), "legacy", kernel=kernel)
    assert info.value.errno == 5 and info.value.step == "enable MSI"


def test_open_of_a_missing_device_names_the_step(kernel: FakeKernel) -> None:
    with pytest.raises(DriverError, match=r"^open: opening 0000:09:00.0") as info:
        EduDriver.open("0000:09:00.0", kernel=kernel)
    assert info.value.step == "open"


def test_eventfd_wait_async(kernel: FakeKernel) -> None:
    with EduDriver.open(str(kernel.labels["edu"]), kernel=kernel) as edu:

        async def main() -> tuple[int | None, int | None]:
            edu.regs.write("irq_raise", 0x8)
            got = await edu.irq.wait_async(timeout=1.0)
            edu.regs.write("irq_ack", 0x8)
            return got, await edu.irq.wait_async(timeout=0.01)

        assert asyncio.run(main()) == (1, None)


def test_eventfd_is_select_friendly() -> None:
    with EventFD() as ev:
        assert select.select([ev], [], [], 0)[0] == []
        ev.signal(2)
        assert select.select([ev], [], [], 0)[0] == [ev]
        assert ev.wait(0) == 2
