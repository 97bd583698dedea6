"""The ``mtty`` mdev parent of Linux's samples/vfio-mdev/mtty.c, as the fake's sysfs shows it.

What is modelled (checked against real mtty by tests/conformance/test_mdev*.py in the lane's 7.3
guests), the mdev core's part in :mod:`pyvfio.fake.mdev_parent`:

* the parent ``devices/virtual/mtty/mtty`` (``class/mdev_bus/mtty`` and ``class/mtty/mtty`` link to
  it) offers ``mtty-1`` ("Single port serial") and ``mtty-2`` ("Dual port serial"), both
  ``device_api`` ``vfio-pci``, drawing on ONE pool of ``MAX_MTTYS`` = 24 ports
  (``available_instances`` = free ports // ports per instance, mtty.c:mtty_get_available);
* ``create`` (mdev_sysfs.c:create_store): EINVAL unless 36 or 37 bytes whose first 36 form a
  UUID (a 37th byte, newline or not, is ignored); EEXIST
  for a UUID any mdev has (mdev_core.c:mdev_device_create); ENOSPC when the pool lacks the
  type's ports (mtty.c:mtty_init_dev, through device_driver_attach);
* the mdev ``devices/virtual/mtty/mtty/<uuid>`` with ``mdev_type`` (link to its type) and
  ``remove`` (mdev_sysfs.c:remove_store: EINVAL unless an unsigned number; ``0`` keeps the
  device), linked from ``bus/mdev/devices/<uuid>`` and the type's ``devices/``;
* the mdev's VFIO device (mtty_probe -> vfio_register_emulated_iommu_dev): an emulated IOMMU
  group of its own and a ``vfio-dev`` cdev (:mod:`pyvfio.fake.mdev`), its device file
  :class:`pyvfio.fake.mtty_vfio.MttyVFIODevice` over the serial ports and migration driver of
  :class:`pyvfio.fake.mtty_device.MttyDevice`.  Removing an mdev that is open is EBUSY here
  (Linux blocks in vfio_unregister_group_dev until the user closes it).
"""

from __future__ import annotations

import errno

from pyvfio.fake.kernel import FakeKernel
from pyvfio.fake.mdev_parent import MdevParent
from pyvfio.fake.memory import kerr
from pyvfio.fake.mtty_device import MttyDevice
from pyvfio.fake.mtty_vfio import MttyVFIODevice

MAX_MTTYS = 24
TYPES = {"1": (1, "Single port serial"), "2": (2, "Dual port serial")}


class MttyMdev(MttyDevice):
    """The model behind one mtty mdev (named by its UUID); opens as an mtty device file."""

    vfio_file = MttyVFIODevice


class _Mtty(MdevParent):
    def __init__(self, kernel: FakeKernel) -> None:
        super().__init__(kernel, "mtty", {t: pretty for t, (_, pretty) in TYPES.items()})
        self.ports = MAX_MTTYS  # mdev_avail_ports

    def available(self, mdev_type: str) -> int:
        """mtty_get_available: free ports // ports per instance."""
        return self.ports // TYPES[mdev_type][0]

    def make(self, mdev_type: str, uid: str) -> MttyMdev:
        """mtty_init_dev: ENOSPC when the pool lacks the type's ports."""
        nr_ports = TYPES[mdev_type][0]
        if self.ports < nr_ports:
            raise kerr(errno.ENOSPC)
        self.ports -= nr_ports
        model = MttyMdev(uid, nr_ports)
        model.migration.install_fd = self.kernel._new_fd
        return model

    def unmake(self, mdev_type: str, model: object) -> None:
        """mtty_release_dev: the ports go back to the pool."""
        self.ports += TYPES[mdev_type][0]


def add_mtty(kernel: FakeKernel) -> None:
    """Give ``kernel`` the mtty sample's parent device (as ``modprobe mtty`` does)."""
    _Mtty(kernel).install()
