"""The ``mtty`` mdev parent of Linux's samples/vfio-mdev/mtty.c, as the fake's sysfs shows it.

What is modelled is the mdev lifecycle a host tool sees (checked against real mtty by
tests/conformance/test_mdev.py in the lane's 7.3 guests):

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
import functools
import uuid as _uuid

from pyvfio.fake import mdev
from pyvfio.fake.kernel import FakeKernel
from pyvfio.fake.memory import kerr
from pyvfio.fake.mtty_device import MttyDevice
from pyvfio.fake.mtty_vfio import MttyVFIODevice

MAX_MTTYS = 24
PARENT = "devices/virtual/mtty/mtty"
TYPES = {"mtty-1": (1, "Single port serial"), "mtty-2": (2, "Dual port serial")}
UUID_STRING_LEN = 36


def _parse_uuid(value: str) -> str:
    if len(value) not in (UUID_STRING_LEN, UUID_STRING_LEN + 1):
        raise kerr(errno.EINVAL)
    text = value[:UUID_STRING_LEN]  # guid_parse reads 36 bytes: a 37th is ignored
    if text.count("-") != 4:
        raise kerr(errno.EINVAL)
    try:
        return str(_uuid.UUID(text))
    except ValueError:
        raise kerr(errno.EINVAL) from None


class MttyMdev(MttyDevice):
    """The model behind one mtty mdev (named by its UUID); opens as an mtty device file."""

    vfio_file = MttyVFIODevice


class _Mtty:
    def __init__(self, kernel: FakeKernel) -> None:
        self.kernel = kernel
        self.sysfs = kernel.sysfs
        self.ports = MAX_MTTYS
        self.mdevs: dict[str, str] = {}  # uuid -> type

    def available(self, mdev_type: str) -> str:
        return f"{self.ports // TYPES[mdev_type][0]}\n"

    def create(self, mdev_type: str, value: str) -> None:
        uid = _parse_uuid(value)
        if uid in self.mdevs or self.sysfs.exists(f"bus/mdev/devices/{uid}"):
            raise kerr(errno.EEXIST)
        nr_ports = TYPES[mdev_type][0]
        if self.ports < nr_ports:
            raise kerr(errno.ENOSPC)
        self.ports -= nr_ports
        self.mdevs[uid] = mdev_type
        dev = f"{PARENT}/{uid}"
        tdir = f"{PARENT}/mdev_supported_types/{mdev_type}"
        self.sysfs.mkdir(dev)
        self.sysfs.symlink(f"{dev}/mdev_type", tdir)
        self.sysfs.symlink(f"{dev}/driver", "bus/mdev/drivers/mtty")
        self.sysfs.add_attr(f"{dev}/remove", "", functools.partial(self.remove, uid))
        self.sysfs.symlink(f"bus/mdev/devices/{uid}", dev)
        self.sysfs.symlink(f"{tdir}/devices/{uid}", dev)
        model = MttyMdev(uid, nr_ports)
        model.migration.install_fd = self.kernel._new_fd
        mdev.register(self.kernel, model, dev, "mtty")

    def remove(self, uid: str, value: str) -> None:
        try:
            val = int(value.strip(), 0)
        except ValueError:
            raise kerr(errno.EINVAL) from None
        if val < 0:
            raise kerr(errno.EINVAL)
        if not val:
            return
        mdev.unregister(self.kernel, uid, f"{PARENT}/{uid}")
        mdev_type = self.mdevs.pop(uid)
        self.ports += TYPES[mdev_type][0]
        for path in (f"bus/mdev/devices/{uid}",
                     f"{PARENT}/mdev_supported_types/{mdev_type}/devices/{uid}",
                     f"{PARENT}/{uid}"):
            self.sysfs.remove(path)


def add_mtty(kernel: FakeKernel) -> None:
    """Give ``kernel`` the mtty sample's parent device (as ``modprobe mtty`` does)."""
    m = _Mtty(kernel)
    sysfs = kernel.sysfs
    sysfs.mkdir("bus/mdev/drivers/mtty")
    sysfs.mkdir("bus/mdev/devices")
    for name, (_ports, pretty) in TYPES.items():
        tdir = f"{PARENT}/mdev_supported_types/{name}"
        sysfs.add_attr(f"{tdir}/name", f"{pretty}\n")
        sysfs.add_attr(f"{tdir}/device_api", "vfio-pci\n")
        sysfs.add_attr(f"{tdir}/available_instances", functools.partial(m.available, name))
        sysfs.add_attr(f"{tdir}/create", "", functools.partial(m.create, name))
        sysfs.mkdir(f"{tdir}/devices")
    sysfs.symlink("class/mdev_bus/mtty", PARENT)
    sysfs.symlink("class/mtty/mtty", PARENT)
