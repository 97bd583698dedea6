"""An mdev parent device in the fake's sysfs: its types, ``create`` and each mdev's ``remove``.

drivers/vfio/mdev (Linux 6.12 and 7.3):

* the parent ``devices/virtual/<class>/<name>`` (linked from ``class/mdev_bus/<name>``) lists
  ``mdev_supported_types/<driver>-<type>/`` with ``name``, ``device_api``,
  ``available_instances``, ``create`` and ``devices/``;
* ``create`` (mdev_sysfs.c:create_store): EINVAL unless 36 or 37 bytes whose first 36 form a
  UUID (guid_parse; a 37th byte is ignored); EEXIST for a UUID any mdev has
  (mdev_core.c:mdev_device_create); a driver without ``get_available`` draws on the parent's
  ``max_instances`` (EUSERS when none are left), one with it decides in its init (ENOSPC);
* the mdev ``<parent>/<uuid>`` has ``mdev_type`` (link to its type), ``driver`` and ``remove``
  (remove_store: EINVAL unless an unsigned number; ``0`` keeps the device), linked from
  ``bus/mdev/devices/<uuid>`` and the type's ``devices/``; its VFIO device is registered through
  :mod:`pyvfio.fake.mdev`.

A driver model (mtty, mdpy, mbochs) subclasses :class:`MdevParent` with :meth:`make` (its
init_dev: the device model, or an errno) and :meth:`unmake` (its release_dev).
"""

from __future__ import annotations

import abc
import errno
import functools
import uuid as _uuid
from typing import TYPE_CHECKING

from pyvfio.fake import mdev
from pyvfio.fake.memory import kerr

if TYPE_CHECKING:
    from pyvfio.fake.kernel import FakeKernel
    from pyvfio.fake.pci import PCIDevice

UUID_STRING_LEN = 36


def parse_uuid(value: str) -> str:
    """create_store's UUID: 36 or 37 bytes, guid_parse of the first 36. Raises EINVAL."""
    if len(value) not in (UUID_STRING_LEN, UUID_STRING_LEN + 1):
        raise kerr(errno.EINVAL)
    text = value[:UUID_STRING_LEN]
    if text.count("-") != 4:
        raise kerr(errno.EINVAL)
    try:
        return str(_uuid.UUID(text))
    except ValueError:
        raise kerr(errno.EINVAL) from None


class MdevParent(abc.ABC):
    """One parent of driver ``driver``: ``types`` maps a type's sysfs name (without the driver
    prefix) to its pretty name; ``max_instances`` is None for a driver with get_available."""

    def __init__(self, kernel: FakeKernel, driver: str, types: dict[str, str],
                 max_instances: int | None = None, device_api: str = "vfio-pci") -> None:
        self.kernel, self.sysfs = kernel, kernel.sysfs
        self.driver, self.types, self.device_api = driver, types, device_api
        self.base = f"devices/virtual/{driver}/{driver}"
        self.left = max_instances  # the parent's available_instances (drivers without count)
        self.mdevs: dict[str, tuple[str, PCIDevice]] = {}  # uuid -> (type, model)

    # -- the driver's part -----------------------------------------------------------------

    def available(self, mdev_type: str) -> int:
        """get_available (drivers that have it override this)."""
        assert self.left is not None
        return self.left

    @abc.abstractmethod
    def make(self, mdev_type: str, uid: str) -> PCIDevice:
        """init_dev: the device model of a new mdev of ``mdev_type``. Raises an errno."""

    def unmake(self, mdev_type: str, model: PCIDevice) -> None:
        """release_dev: give back what :meth:`make` took (nothing by default)."""
        return None

    # -- the mdev core's part --------------------------------------------------------------

    def install(self) -> None:
        """mdev_register_parent: the parent and its types in sysfs (``modprobe <driver>``)."""
        sysfs = self.sysfs
        sysfs.mkdir(f"bus/mdev/drivers/{self.driver}")
        sysfs.mkdir("bus/mdev/devices")
        for name, pretty in self.types.items():
            tdir = self._tdir(name)
            sysfs.add_attr(f"{tdir}/name", f"{pretty}\n")
            sysfs.add_attr(f"{tdir}/device_api", f"{self.device_api}\n")
            sysfs.add_attr(f"{tdir}/available_instances",
                           functools.partial(lambda t: f"{self.available(t)}\n", name))
            sysfs.add_attr(f"{tdir}/create", "", functools.partial(self.create, name))
            sysfs.mkdir(f"{tdir}/devices")
        sysfs.symlink(f"class/mdev_bus/{self.driver}", self.base)
        sysfs.symlink(f"class/{self.driver}/{self.driver}", self.base)

    def _tdir(self, name: str) -> str:
        return f"{self.base}/mdev_supported_types/{self.driver}-{name}"

    def create(self, mdev_type: str, value: str) -> None:
        """create_store + mdev_device_create + the driver's probe."""
        uid = parse_uuid(value)
        if uid in self.mdevs or self.sysfs.exists(f"bus/mdev/devices/{uid}"):
            raise kerr(errno.EEXIST)
        if self.left is not None and not self.left:
            raise kerr(errno.EUSERS)
        model = self.make(mdev_type, uid)
        if self.left is not None:
            self.left -= 1
        self.mdevs[uid] = mdev_type, model
        dev, tdir = f"{self.base}/{uid}", self._tdir(mdev_type)
        self.sysfs.mkdir(dev)
        self.sysfs.symlink(f"{dev}/mdev_type", tdir)
        self.sysfs.symlink(f"{dev}/driver", f"bus/mdev/drivers/{self.driver}")
        self.sysfs.add_attr(f"{dev}/remove", "", functools.partial(self.remove, uid))
        self.sysfs.symlink(f"bus/mdev/devices/{uid}", dev)
        self.sysfs.symlink(f"{tdir}/devices/{uid}", dev)
        mdev.register(self.kernel, model, dev, self.driver)

    def remove(self, uid: str, value: str) -> None:
        """remove_store: kstrtoul, then mdev_device_remove (``0`` keeps the device)."""
        try:
            val = int(value.strip(), 0)
        except ValueError:
            raise kerr(errno.EINVAL) from None
        if val < 0:
            raise kerr(errno.EINVAL)
        if not val:
            return
        mdev.unregister(self.kernel, uid, f"{self.base}/{uid}")
        mdev_type, model = self.mdevs.pop(uid)
        self.unmake(mdev_type, model)
        if self.left is not None:
            self.left += 1
        for path in (f"bus/mdev/devices/{uid}", f"{self._tdir(mdev_type)}/devices/{uid}",
                     f"{self.base}/{uid}"):
            self.sysfs.remove(path)
