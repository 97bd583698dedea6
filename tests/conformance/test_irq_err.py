"""The ERR IRQ (VFIO_PCI_ERR_IRQ_INDEX: AER error notification) of a conventional PCI device.

6.12's vfio_pci_get_irq_count gives ERR one vector only on PCIe devices and vfio_pci_set_irqs_ioctl
routes it only for them: QEMU's edu (conventional PCI) has none, so SET_IRQS fails in
vfio_set_irqs_validate_and_prepare (start >= max 0: EINVAL).  7.3 gives every device one ERR
vector: TRIGGER reaches vfio_pci_set_err_trigger -> vfio_pci_set_ctx_trigger_single, and
MASK/UNMASK have no handler (ENOTTY).
"""

from __future__ import annotations

import errno

from pyvfio._ffi import C
from tests.conformance.irq_helpers import (
    BOOL,
    ERR,
    EVENTFD,
    NONE,
    TRIGGER,
    irq_info,
    set_irqs,
    wait_event,
)
from tests.conformance.vfio_helpers import session
from tests.conftest import Host
from tests.helpers import expect_errno, expect_ok


def _all_have_err(host: Host) -> bool:
    return host.linux_at_least(7, 3)


def test_err_irq_info_count(host: Host) -> None:
    """vfio_pci_ioctl_get_irq_info(ERR): 7.3 one vector, EVENTFD|NORESIZE; 6.12 EINVAL."""
    with session(host) as s:
        _, _, d = s.edu()
        if not _all_have_err(host):
            expect_errno(errno.EINVAL, irq_info, host, d, ERR)
            return
        info = irq_info(host, d, ERR)
        assert (info.flags, info.count) == (C.VFIO_IRQ_INFO_EVENTFD | C.VFIO_IRQ_INFO_NORESIZE, 1)


def test_err_trigger_set_and_clear(host: Host) -> None:
    """vfio_pci_set_ctx_trigger_single: an eventfd, then fd -1 (clear) -> 0 on 7.3."""
    with session(host) as s:
        _, _, d = s.edu()
        efd = s.track(s.k.eventfd())
        if not _all_have_err(host):
            expect_errno(errno.EINVAL, set_irqs, host, d, ERR, EVENTFD | TRIGGER, fds=[efd])
            return
        expect_ok(set_irqs, host, d, ERR, EVENTFD | TRIGGER, fds=[efd])
        expect_ok(set_irqs, host, d, ERR, EVENTFD | TRIGGER, fds=[-1])
        expect_ok(set_irqs, host, d, ERR, EVENTFD | TRIGGER, fds=[-1])  # nothing set: still 0


def test_err_trigger_closed_fd_ebadf(host: Host) -> None:
    """eventfd_ctx_fdget of a closed fd -> EBADF on 7.3 (6.12: EINVAL, no ERR vector)."""
    with session(host) as s:
        _, _, d = s.edu()
        closed = s.k.eventfd()
        s.k.close(closed)
        want = errno.EBADF if _all_have_err(host) else errno.EINVAL
        expect_errno(want, set_irqs, host, d, ERR, EVENTFD | TRIGGER, fds=[closed])


def test_err_trigger_below_minus_one_einval(host: Host) -> None:
    """vfio_pci_set_ctx_trigger_single: an fd below -1 is EINVAL on both."""
    with session(host) as s:
        _, _, d = s.edu()
        expect_errno(errno.EINVAL, set_irqs, host, d, ERR, EVENTFD | TRIGGER, fds=[-2])


def test_err_loopback(host: Host) -> None:
    """DATA_NONE (count 1) and DATA_BOOL true signal the registered ERR eventfd (7.3)."""
    with session(host) as s:
        _, _, d = s.edu()
        if not _all_have_err(host):
            expect_errno(errno.EINVAL, set_irqs, host, d, ERR, NONE | TRIGGER, count=1)
            return
        efd = s.track(s.k.eventfd())
        expect_ok(set_irqs, host, d, ERR, EVENTFD | TRIGGER, fds=[efd])
        expect_ok(set_irqs, host, d, ERR, NONE | TRIGGER, count=1)
        assert wait_event(host, efd) == 1
        expect_ok(set_irqs, host, d, ERR, BOOL | TRIGGER, fds=[1])
        assert wait_event(host, efd) == 1
        expect_ok(set_irqs, host, d, ERR, NONE | TRIGGER, count=0)  # count 0: unregister
        expect_errno(errno.EINVAL, set_irqs, host, d, ERR, NONE | TRIGGER, count=1)


def test_err_mask_unmask_enotty(host: Host) -> None:
    """vfio_pci_set_irqs_ioctl: ERR has no MASK/UNMASK handler -> ENOTTY on 7.3 (6.12:
    EINVAL from the validation, max 0)."""
    with session(host) as s:
        _, _, d = s.edu()
        want = errno.ENOTTY if _all_have_err(host) else errno.EINVAL
        for action in (C.VFIO_IRQ_SET_ACTION_MASK, C.VFIO_IRQ_SET_ACTION_UNMASK):
            expect_errno(want, set_irqs, host, d, ERR, NONE | action, count=1)


def test_err_two_vectors_einval(host: Host) -> None:
    """vfio_set_irqs_validate_and_prepare: start + count past the one vector -> EINVAL."""
    with session(host) as s:
        _, _, d = s.edu()
        expect_errno(errno.EINVAL, set_irqs, host, d, ERR, NONE | TRIGGER, count=2)
        expect_errno(errno.EINVAL, set_irqs, host, d, ERR, NONE | TRIGGER, start=1, count=1)
