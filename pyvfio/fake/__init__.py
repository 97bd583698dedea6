"""The fake kernel: a pure-Python model of Linux VFIO behind the Kernel seam.

``FakeKernel`` answers the same system calls as :class:`pyvfio.kernel.LinuxKernel` from a model
of the kernel (sysfs, /dev/vfio, containers with type1, groups, vfio-pci devices); the device
models (QEMU's edu, a configurable generic PCI device) do real DMA into the caller's memory
through the IOMMU model and raise interrupts on real eventfds.
"""

from pyvfio.fake.call import Call
from pyvfio.fake.edu import Edu
from pyvfio.fake.host import nonviable_host, standard_host
from pyvfio.fake.kernel import FakeKernel
from pyvfio.fake.pci import BAR, DeviceConfig, Fault, PCIDevice

__all__ = [
    "BAR",
    "Call",
    "DeviceConfig",
    "Edu",
    "FakeKernel",
    "Fault",
    "PCIDevice",
    "nonviable_host",
    "standard_host",
]
