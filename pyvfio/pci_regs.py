"""PCI configuration-space registers and bits, named as in Linux include/uapi/linux/pci_regs.h.

The one place these numbers are written: the config-space accessors (:mod:`pyvfio.pci`), the
drivers, and the fake's device models (:mod:`pyvfio.fake.pci`) import them from here.
"""

from __future__ import annotations

PCI_VENDOR_ID = 0x00
PCI_DEVICE_ID = 0x02
PCI_COMMAND = 0x04
PCI_COMMAND_IO = 0x1
PCI_COMMAND_MEMORY = 0x2
PCI_COMMAND_MASTER = 0x4
PCI_COMMAND_SERR = 0x100
PCI_COMMAND_INTX_DISABLE = 0x400
PCI_STATUS = 0x06
PCI_STATUS_CAP_LIST = 0x10
PCI_HEADER_TYPE = 0x0E
PCI_HEADER_TYPE_CARDBUS = 2
PCI_CAPABILITY_LIST = 0x34
PCI_CB_CAPABILITY_LIST = 0x14
PCI_INTERRUPT_PIN = 0x3D
PCI_CAP_ID_PM = 0x01
PCI_CAP_ID_MSI = 0x05
PCI_CAP_ID_EXP = 0x10
PCI_CAP_ID_MSIX = 0x11
PCI_MSI_FLAGS = 0x02
PCI_MSI_FLAGS_ENABLE = 0x1
PCI_MSI_FLAGS_QMASK = 0x0E
PCI_MSI_FLAGS_QSIZE = 0x70
PCI_MSIX_FLAGS_ENABLE = 0x8000
PCI_BASE_ADDRESS_SPACE_IO = 0x1
PCI_BASE_ADDRESS_MEM_TYPE_64 = 0x4
PCI_BASE_ADDRESS_MEM_PREFETCH = 0x8
PCI_CFG_SPACE_SIZE = 0x100
PCI_CFG_SPACE_EXP_SIZE = 0x1000
