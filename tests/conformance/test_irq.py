"""vfio-pci interrupts: GET_IRQ_INFO and SET_IRQS (vfio_pci_core.c, vfio_pci_intrs.c,
vfio_main.c:vfio_set_irqs_validate_and_prepare)."""

from __future__ import annotations

import errno
import os

from pyvfio import uapi
from pyvfio._ffi import C, new
from tests.conformance.irq_helpers import (
    BOOL,
    ERR,
    EVENTFD,
    INTX,
    MSI,
    MSIX,
    NONE,
    REQ,
    TRIGGER,
    irq_info,
    set_irqs,
    wait_event,
)
from tests.conformance.vfio_helpers import session
from tests.conftest import Host
from tests.helpers import expect_errno, expect_ok


def test_irq_info_intx(host: Host) -> None:
    """vfio_pci_ioctl_get_irq_info: INTx has one vector, EVENTFD|MASKABLE|AUTOMASKED."""
    with session(host) as s:
        _, _, d = s.edu()
        info = irq_info(host, d, INTX)
        want = C.VFIO_IRQ_INFO_EVENTFD | C.VFIO_IRQ_INFO_MASKABLE | C.VFIO_IRQ_INFO_AUTOMASKED
        assert (info.flags, info.count) == (want, 1)


def test_irq_info_msi(host: Host) -> None:
    """vfio_pci_get_irq_count: edu has one MSI vector (NORESIZE) and no MSI-X."""
    with session(host) as s:
        _, _, d = s.edu()
        msi = irq_info(host, d, MSI)
        assert msi.count == 1 and msi.flags & C.VFIO_IRQ_INFO_NORESIZE
        assert irq_info(host, d, MSIX).count == 0


def test_irq_info_err_on_conventional_pci(host: Host) -> None:
    """vfio_pci_ioctl_get_irq_info: the ERR index of a non-PCIe device: 6.12 -> EINVAL; 7.3
    answers every index it knows, and its vfio_pci_get_irq_count gives ERR a count of 1 even
    without PCIe (seen on 7.3.4's edu)."""
    with session(host) as s:
        _, _, d = s.edu()
        if not host.linux_at_least(7, 3):
            expect_errno(errno.EINVAL, irq_info, host, d, ERR)
            return
        assert irq_info(host, d, ERR).count == 1


def test_irq_info_bad_index_einval(host: Host) -> None:
    """vfio_pci_ioctl_get_irq_info: index >= VFIO_PCI_NUM_IRQS -> EINVAL."""
    with session(host) as s:
        _, _, d = s.edu()
        expect_errno(errno.EINVAL, irq_info, host, d, 5)


def test_set_irqs_msix_count_zero_einval(host: Host) -> None:
    """vfio_set_irqs_validate_and_prepare: start >= irq count (MSI-X has 0) -> EINVAL."""
    with session(host) as s:
        _, _, d = s.edu()
        expect_errno(errno.EINVAL, set_irqs, host, d, MSIX, NONE | TRIGGER, count=0)


def test_set_irqs_two_data_types_einval(host: Host) -> None:
    """vfio_set_irqs_validate_and_prepare: more than one DATA type -> EINVAL."""
    with session(host) as s:
        _, _, d = s.edu()
        expect_errno(errno.EINVAL, set_irqs, host, d, INTX, NONE | BOOL | TRIGGER, count=1)


def test_set_irqs_two_actions_enotty(host: Host) -> None:
    """vfio_pci_set_irqs_ioctl: an action that is not exactly one bit -> ENOTTY."""
    with session(host) as s:
        _, _, d = s.edu()
        flags = NONE | TRIGGER | C.VFIO_IRQ_SET_ACTION_MASK
        expect_errno(errno.ENOTTY, set_irqs, host, d, INTX, flags, count=1)


def test_set_irqs_msi_mask_enotty(host: Host) -> None:
    """vfio_pci_set_irqs_ioctl: MASK on MSI is not supported -> ENOTTY."""
    with session(host) as s:
        _, _, d = s.edu()
        expect_errno(errno.ENOTTY, set_irqs, host, d, MSI, NONE | C.VFIO_IRQ_SET_ACTION_MASK,
                     count=1)


def test_set_irqs_argsz_short_for_data_einval(host: Host) -> None:
    """vfio_set_irqs_validate_and_prepare: argsz - 20 < count * 4 for EVENTFD -> EINVAL."""
    with session(host) as s:
        _, _, d = s.edu()
        irq = new("struct vfio_irq_set *", flags=EVENTFD | TRIGGER, index=MSI, start=0, count=1)
        expect_errno(errno.EINVAL, s.k.ioctl, d, uapi.VFIO_DEVICE_SET_IRQS, irq)


def test_intx_mask_without_intx_einval(host: Host) -> None:
    """vfio_pci_set_intx_mask: INTx not enabled -> EINVAL."""
    with session(host) as s:
        _, _, d = s.edu()
        expect_errno(errno.EINVAL, set_irqs, host, d, INTX, NONE | C.VFIO_IRQ_SET_ACTION_MASK,
                     count=1)


def test_msi_disable_when_not_enabled_einval(host: Host) -> None:
    """vfio_pci_set_msi_trigger: DATA_NONE count 0 on a disabled index -> EINVAL."""
    with session(host) as s:
        _, _, d = s.edu()
        expect_errno(errno.EINVAL, set_irqs, host, d, MSI, NONE | TRIGGER, count=0)


def test_msi_and_intx_exclusive_einval(host: Host) -> None:
    """vfio_pci_set_intx_trigger: INTx while MSI is enabled -> EINVAL (one type at a time)."""
    with session(host) as s:
        _, _, d = s.edu()
        efd = s.track(s.k.eventfd())
        expect_ok(set_irqs, host, d, MSI, EVENTFD | TRIGGER, fds=[efd])
        expect_errno(errno.EINVAL, set_irqs, host, d, INTX, EVENTFD | TRIGGER, fds=[efd])
        expect_ok(set_irqs, host, d, MSI, NONE | TRIGGER, count=0)


def test_msi_loopback(host: Host) -> None:
    """vfio_pci_set_msi_trigger: DATA_NONE on an enabled vector signals its eventfd."""
    with session(host) as s:
        _, _, d = s.edu()
        efd = s.track(s.k.eventfd())
        set_irqs(host, d, MSI, EVENTFD | TRIGGER, fds=[efd])
        set_irqs(host, d, MSI, NONE | TRIGGER, count=1)
        assert wait_event(host, efd) == 1
        set_irqs(host, d, MSI, NONE | TRIGGER, count=0)


def test_intx_loopback(host: Host) -> None:
    """vfio_pci_set_intx_trigger: DATA_BOOL(1) with INTx enabled signals the trigger eventfd."""
    with session(host) as s:
        _, _, d = s.edu()
        efd = s.track(s.k.eventfd())
        set_irqs(host, d, INTX, EVENTFD | TRIGGER, fds=[efd])
        set_irqs(host, d, INTX, BOOL | TRIGGER, fds=[1])
        assert wait_event(host, efd) == 1
        set_irqs(host, d, INTX, NONE | TRIGGER, count=0)


def test_eventfd_not_an_eventfd_einval(host: Host) -> None:
    """eventfd_ctx_fdget: an fd that is not an eventfd -> EINVAL."""
    with session(host) as s:
        _, _, d = s.edu()
        r, w = os.pipe()
        try:
            expect_errno(errno.EINVAL, set_irqs, host, d, MSI, EVENTFD | TRIGGER, fds=[r])
        finally:
            os.close(r)
            os.close(w)


def test_req_trigger_set_and_clear(host: Host) -> None:
    """vfio_pci_set_ctx_trigger_single: REQ takes an eventfd, fd -1 clears it."""
    with session(host) as s:
        _, _, d = s.edu()
        efd = s.track(s.k.eventfd())
        expect_ok(set_irqs, host, d, REQ, EVENTFD | TRIGGER, fds=[efd])
        expect_ok(set_irqs, host, d, REQ, EVENTFD | TRIGGER, fds=[-1])


def test_req_none_without_eventfd_einval(host: Host) -> None:
    """vfio_pci_set_ctx_trigger_single: DATA_NONE with no eventfd registered -> EINVAL."""
    with session(host) as s:
        _, _, d = s.edu()
        expect_errno(errno.EINVAL, set_irqs, host, d, REQ, NONE | TRIGGER, count=1)


def test_irq_info_msix_absent_noresize(host: Host) -> None:
    """vfio_pci_ioctl_get_irq_info: MSI-X without dynamic allocation (edu has no MSI-X
    capability, so pci_msix_can_alloc_dyn() is false) -> EVENTFD|NORESIZE, count 0."""
    with session(host) as s:
        _, _, d = s.edu()
        info = new("struct vfio_irq_info *", argsz=16, index=C.VFIO_PCI_MSIX_IRQ_INDEX)
        expect_ok(s.k.ioctl, d, uapi.VFIO_DEVICE_GET_IRQ_INFO, info)
        assert info.flags == C.VFIO_IRQ_INFO_EVENTFD | C.VFIO_IRQ_INFO_NORESIZE
        assert info.count == 0


def test_msi_enable_zero_vectors_erange(host: Host) -> None:
    """vfio_pci_set_msi_trigger: EVENTFD with start = count = 0 enables nvec = 0 vectors:
    pci_alloc_irq_vectors(1, 0) -> ERANGE."""
    with session(host) as s:
        _, _, d = s.edu()
        irq = new("struct vfio_irq_set *", argsz=20, index=C.VFIO_PCI_MSI_IRQ_INDEX, count=0,
                  flags=C.VFIO_IRQ_SET_DATA_EVENTFD | C.VFIO_IRQ_SET_ACTION_TRIGGER)
        expect_errno(errno.ERANGE, s.k.ioctl, d, uapi.VFIO_DEVICE_SET_IRQS, irq)
