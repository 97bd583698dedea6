"""Interrupts: irq info, eventfd triggers for MSI/INTx/ERR/REQ, mask/unmask, disable; EventFD."""

from __future__ import annotations

import errno

import pytest

from pyvfio.irq import EventFD
from pyvfio.kernel import LinuxKernel
from pyvfio.uapi import IrqInfoFlag, PCIIrq, PCIRegion
from tests.helpers import expect_errno
from tests.unit.vfio_env import Opened


def test_eventfd_wait_signal_timeout() -> None:
    with EventFD(LinuxKernel()) as efd:
        assert efd.wait(0) is None and efd.read() is None
        efd.signal(2)
        efd.signal()
        assert efd.wait(1) == 3
        assert efd.wait(0.01) is None
        with pytest.raises(ValueError, match="timeout"):
            efd.wait(-1)
        with pytest.raises(ValueError, match="value"):
            efd.signal(0)
    assert efd.closed
    with pytest.raises(ValueError, match="closed"):
        efd.wait(0)


def test_irq_info_msi_and_intx(edu: Opened) -> None:
    msi = edu.device.irq_info(PCIIrq.MSI)
    assert msi.index == PCIIrq.MSI and msi.count == 1 and msi.eventfd and msi.noresize
    intx = edu.device.irq_info(PCIIrq.INTX)
    assert intx.flags & IrqInfoFlag.MASKABLE and intx.maskable and intx.automasked
    req = edu.device.irq_info(PCIIrq.REQ)
    assert req.count == 1


def test_irq_info_bad_index(edu: Opened) -> None:
    expect_errno(errno.EINVAL, edu.device.irq_info, 99)
    with pytest.raises(ValueError, match="index"):
        edu.device.irq_info(-1)


def test_msi_trigger_loopback_and_disable(edu: Opened) -> None:
    with EventFD(edu.host.kernel) as efd:
        assert edu.device.enable_irq(PCIIrq.MSI, [efd]) == 0
        edu.device.trigger_irq(PCIIrq.MSI)
        assert efd.wait(1) == 1
        expect_errno(errno.ENOTTY, edu.device.mask_irq, PCIIrq.MSI)
        expect_errno(errno.EINVAL, edu.device.enable_irq, PCIIrq.INTX, [efd])  # MSI is on
        edu.device.disable_irq(PCIIrq.MSI)
        expect_errno(errno.EINVAL, edu.device.trigger_irq, PCIIrq.MSI)


EDU_IRQ_RAISE, EDU_IRQ_ACK = 0x60, 0x64  # QEMU edu: write bits to raise / acknowledge


def _edu_irq(edu: Opened, register: int) -> None:
    edu.device.write(PCIRegion.BAR0, register, (1).to_bytes(4, "little"))


def test_intx_is_automasked_until_unmask(edu: Opened) -> None:
    """vfio_pci_intrs.c: each assertion signals once and masks; UNMASK of a line still asserted
    signals again (vfio_pci_intx_unmask_handler)."""
    with EventFD(edu.host.kernel) as efd:
        edu.device.enable_irq(PCIIrq.INTX, [efd])
        _edu_irq(edu, EDU_IRQ_RAISE)
        assert efd.wait(1) == 1
        _edu_irq(edu, EDU_IRQ_ACK)
        _edu_irq(edu, EDU_IRQ_RAISE)  # asserted again, but the line is still masked
        assert efd.read() is None
        edu.device.unmask_irq(PCIIrq.INTX)
        assert efd.wait(1) == 1
        _edu_irq(edu, EDU_IRQ_ACK)
        edu.device.unmask_irq(PCIIrq.INTX)  # deasserted now: nothing to signal
        assert efd.read() is None
        edu.device.disable_irq(PCIIrq.INTX)


def test_intx_mask_holds_an_interrupt_back(edu: Opened) -> None:
    with EventFD(edu.host.kernel) as efd:
        edu.device.enable_irq(PCIIrq.INTX, [efd])
        edu.device.mask_irq(PCIIrq.INTX)
        _edu_irq(edu, EDU_IRQ_RAISE)
        assert efd.read() is None
        edu.device.unmask_irq(PCIIrq.INTX)
        assert efd.wait(1) == 1
        _edu_irq(edu, EDU_IRQ_ACK)
        edu.device.disable_irq(PCIIrq.INTX)
        expect_errno(errno.EINVAL, edu.device.mask_irq, PCIIrq.INTX)  # INTx is off


def test_req_trigger_set_and_clear(edu: Opened) -> None:
    """vfio_pci_set_ctx_trigger_single: DATA_NONE signals the eventfd that is set, EINVAL with
    none; fd -1 clears it."""
    with EventFD(edu.host.kernel) as efd:
        edu.device.enable_irq(PCIIrq.REQ, [efd])
        edu.device.trigger_irq(PCIIrq.REQ)
        assert efd.wait(1) == 1
        edu.device.enable_irq(PCIIrq.REQ, [None])  # fd -1: clear
        expect_errno(errno.EINVAL, edu.device.trigger_irq, PCIIrq.REQ)
        assert efd.read() is None


def test_enable_irq_bad_args_before_syscall(edu: Opened) -> None:
    with pytest.raises(ValueError, match="eventfds"):
        edu.device.enable_irq(PCIIrq.MSI, [])
    with pytest.raises(ValueError, match="start"):
        edu.device.enable_irq(PCIIrq.MSI, [None], start=-1)
