"""What vfio-pci's config-space virtualization lets through: the header's COMMAND register and
the MSI capability's flags (drivers/vfio/pci/vfio_pci_config.c: init_pci_cap_basic_perm,
init_pci_cap_msi_perm, vfio_msi_config_read/write; the edu is QEMU 7.2's, whose pci_init_wmask
and msi_init decide which bits the device keeps).  Found by tests/differential (debian, type1).
"""

from __future__ import annotations

from pyvfio import pci_regs as regs
from tests.conformance.irq_helpers import EVENTFD, MSI, NONE, TRIGGER, set_irqs
from tests.conformance.vfio_helpers import PCI_COMMAND, cfg_read, cfg_write, session
from tests.conftest import Host
from tests.helpers import expect_ok

# QEMU pci_init_wmask: IO, MEMORY, MASTER, SERR and INTX_DISABLE (vfio virtualizes the last)
EDU_COMMAND_WRITABLE = (regs.PCI_COMMAND_IO | regs.PCI_COMMAND_MEMORY | regs.PCI_COMMAND_MASTER
                        | regs.PCI_COMMAND_SERR | regs.PCI_COMMAND_INTX_DISABLE)
MSI_64BIT = 0x80  # PCI_MSI_FLAGS_64BIT: QEMU's edu has a 64-bit MSI capability, one vector


def msi_cap(host: Host, dev: int) -> int:
    """The MSI capability's offset, walking the list from PCI_CAPABILITY_LIST."""
    pos = cfg_read(host, dev, regs.PCI_CAPABILITY_LIST, 1)
    while pos:
        if cfg_read(host, dev, pos, 1) == regs.PCI_CAP_ID_MSI:
            return pos
        pos = cfg_read(host, dev, pos + 1, 1)
    raise AssertionError("no MSI capability")


def test_command_all_ones_keeps_the_devices_bits(host: Host) -> None:
    """COMMAND is written through to the device (INTX_DISABLE virtualized): all ones reads back
    as the bits QEMU's device implements, SERR among them."""
    with session(host) as s:
        _, _, d = s.edu()
        cfg_write(host, d, PCI_COMMAND, 2, 0xFFFF)
        assert cfg_read(host, d, PCI_COMMAND, 2) == EDU_COMMAND_WRITABLE


def test_msi_enable_by_ioctl_not_in_flags(host: Host) -> None:
    """SET_IRQS enables MSI in the device, not in vfio's virtual flags: the user reads the
    flags as before."""
    with session(host) as s:
        _, _, d = s.edu()
        cap = msi_cap(host, d)
        flags = cfg_read(host, d, cap + regs.PCI_MSI_FLAGS, 2)
        assert flags == MSI_64BIT
        efd = host.kernel.eventfd()
        try:
            expect_ok(set_irqs, host, d, MSI, EVENTFD | TRIGGER, fds=[efd])
            assert cfg_read(host, d, cap + regs.PCI_MSI_FLAGS, 2) == flags
            expect_ok(set_irqs, host, d, MSI, NONE | TRIGGER, count=0)
        finally:
            host.kernel.close(efd)


def test_msi_flags_high_byte_takes_no_write(host: Host) -> None:
    """init_pci_cap_msi_perm: the flags' low byte is virtual and writable (even 64BIT reads
    back cleared), the high byte is reserved: a dword write of 0x0400 at the flags reads back
    0 in both."""
    with session(host) as s:
        _, _, d = s.edu()
        cap = msi_cap(host, d)
        cfg_write(host, d, cap + regs.PCI_MSI_FLAGS, 4, 0x0400)
        assert cfg_read(host, d, cap + regs.PCI_MSI_FLAGS, 2) == 0
        cfg_write(host, d, cap + regs.PCI_MSI_FLAGS, 1, MSI_64BIT)
        assert cfg_read(host, d, cap + regs.PCI_MSI_FLAGS, 2) == MSI_64BIT


def test_msi_enable_write_sticks_only_while_msi_is_on(host: Host) -> None:
    """vfio_msi_config_write: ENABLE written by the user is cleared unless MSI is the device's
    interrupt type (set by SET_IRQS); QSIZE above msi_qmax is cut to it."""
    with session(host) as s:
        _, _, d = s.edu()
        cap = msi_cap(host, d) + regs.PCI_MSI_FLAGS
        cfg_write(host, d, cap, 1, MSI_64BIT | regs.PCI_MSI_FLAGS_ENABLE | 0x30)
        assert cfg_read(host, d, cap, 1) == MSI_64BIT
        efd = host.kernel.eventfd()
        try:
            expect_ok(set_irqs, host, d, MSI, EVENTFD | TRIGGER, fds=[efd])
            cfg_write(host, d, cap, 1, MSI_64BIT | regs.PCI_MSI_FLAGS_ENABLE)
            assert cfg_read(host, d, cap, 1) == MSI_64BIT | regs.PCI_MSI_FLAGS_ENABLE
            expect_ok(set_irqs, host, d, MSI, NONE | TRIGGER, count=0)
        finally:
            host.kernel.close(efd)


def test_msi_flags_qmask_written_sticks(host: Host) -> None:
    """vfio_msi_config_read means to show msi_qmax in QMASK but writes it into vconfig[start]
    (the capability's id, read from the device): the flags' virtual low byte reads back the
    QMASK written, before and after SET_IRQS enabled one MSI vector (msi_qmax 0)."""
    with session(host) as s:
        _, _, d = s.edu()
        cap = msi_cap(host, d) + regs.PCI_MSI_FLAGS
        cfg_write(host, d, cap, 1, MSI_64BIT | 0x06)
        assert cfg_read(host, d, cap, 1) == MSI_64BIT | 0x06
        assert cfg_read(host, d, cap - regs.PCI_MSI_FLAGS, 1) == regs.PCI_CAP_ID_MSI
        efd = host.kernel.eventfd()
        try:
            expect_ok(set_irqs, host, d, MSI, EVENTFD | TRIGGER, fds=[efd])
            assert cfg_read(host, d, cap, 1) == MSI_64BIT | 0x06
            expect_ok(set_irqs, host, d, MSI, NONE | TRIGGER, count=0)
        finally:
            host.kernel.close(efd)
            cfg_write(host, d, cap, 1, MSI_64BIT)
