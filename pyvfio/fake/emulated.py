"""An emulated-IOMMU VFIO device (an mdev) on iommufd: an access object, not a device object.

vfio/iommufd.c's emulated ops give such a device no IOMMU domain: BIND creates an
``IOMMUFD_OBJ_ACCESS`` (iommufd/device.c:iommufd_access_create, whose id is the ``out_devid``),
ATTACH points the access at an IOAS (iommufd_access_attach, or _replace when attached) and
answers the IOAS's own id, DETACH and unbind let go of it.  Modelled rules:

* the access is held by its driver: IOMMU_DESTROY of its id is EBUSY (``refcount_inc`` in
  __iommufd_access_create);
* ATTACH takes an IOAS id only: a HWPT or any other object is ENOENT (iommufd_get_ioas); the
  attached IOAS holds a user, so IOMMU_DESTROY of it is EBUSY (iommufd_access_change_ioas);
* PASID attach/detach are EOPNOTSUPP (device_cdev.c: no ``pasid_attach_ioas`` op).

Not modelled: the access's page pinning and ``iommufd_access_rw`` (the sample mdevs the fake
has, mtty/mdpy/mbochs, never touch user memory through it), and the unmap notifier.
"""

from __future__ import annotations

from typing import Any

from pyvfio.fake.iommufd import IOASObj, IommufdCtx, Obj


class AccessObj(Obj):
    """IOMMUFD_OBJ_ACCESS of an emulated VFIO device."""

    kind = "ACCESS"

    def __init__(self, dev: Any) -> None:
        super().__init__()
        self.dev = dev
        self.ioas: IOASObj | None = None

    def busy(self) -> bool:
        return True  # the VFIO driver is a user until iommufd_access_destroy

    def destroy(self, ctx: IommufdCtx) -> None:
        detach(self)


def bind(ctx: IommufdCtx, dev: Any) -> AccessObj:
    """vfio_iommufd_emulated_bind: a new access object in ``ctx``."""
    obj = AccessObj(dev)
    ctx.table.add(obj)
    return obj


def attach(ctx: IommufdCtx, obj: AccessObj, pt_id: int) -> int:
    """vfio_iommufd_emulated_attach_ioas: attach or replace; returns ``pt_id`` unchanged.
    Raises ENOENT (not an IOAS)."""
    ioas = ctx.get_ioas(pt_id)
    if ioas is not obj.ioas:
        ioas.users += 1
        detach(obj)
        obj.ioas = ioas
    return pt_id


def detach(obj: AccessObj) -> None:
    """vfio_iommufd_emulated_detach_ioas: a no-op when not attached."""
    if obj.ioas is not None:
        obj.ioas.users -= 1
        obj.ioas = None


def unbind(ctx: IommufdCtx, obj: AccessObj) -> None:
    """vfio_iommufd_emulated_unbind: iommufd_access_destroy."""
    detach(obj)
    ctx.table.remove(obj)


def is_emulated(dev: Any) -> bool:
    """Tell whether a device file is an emulated-IOMMU one (its model is an mdev)."""
    return bool(getattr(dev, "emulated", False))
