"""The SR-IOV VF token: the shared secret between a vfio-pci PF's user and its VFs' users.

drivers/vfio/pci/vfio_pci_core.c: when vfio-pci binds an SR-IOV PF it generates a random token
(``vfio_pci_vf_token`` in vfio_pci_core_init_dev) that nobody can read back (no GET of
``VFIO_DEVICE_FEATURE_PCI_VF_TOKEN``).  So until the PF's user SETs a token, no VF of that PF
bound to vfio-pci can be opened: ``vfio_pci_validate_vf_token`` answers EACCES to a VF opened
without the token (``VFIO_GROUP_GET_DEVICE_FD`` "BDF vf_token=UUID", or
``VFIO_DEVICE_BIND_IOMMUFD`` with ``VFIO_DEVICE_BIND_FLAG_TOKEN`` since 6.17) or with another one,
and to the PF opened without it while VFs are in use.  The token lives as long as the PF stays
bound to vfio-pci.
"""

from __future__ import annotations

import uuid

from pyvfio._ffi import C
from pyvfio.kernel import Kernel


def parse(token: uuid.UUID | str | None) -> uuid.UUID:
    """Return ``token`` as a UUID, a fresh random one for ``None``.

    Raises:
        ValueError: ``token`` is not a UUID.
    """
    if token is None:
        return uuid.uuid4()
    if isinstance(token, uuid.UUID):
        return token
    try:
        return uuid.UUID(str(token))
    except ValueError:
        raise ValueError(f"vf_token must be a UUID, not {token!r}") from None


def device_name(bdf: str, token: uuid.UUID | str | None) -> str:
    """The ``VFIO_GROUP_GET_DEVICE_FD`` name of ``bdf`` carrying ``token`` (if any)."""
    return bdf if token is None else f"{bdf} vf_token={parse(token)}"


def set_token(bdf: str, token: uuid.UUID | str | None = None, *,
              kernel: Kernel | None = None) -> uuid.UUID:
    """Open PF ``bdf`` (vfio-pci), SET its VF token to ``token`` (random if None); return it.

    Raises:
        ValueError: a malformed BDF or token.
        OSError: the kernel's errno: ENOTTY ``bdf`` is not an SR-IOV PF on vfio-pci (no
            ``vf_token``), EACCES the PF has VFs in use (its open needs the current token), and
            those of opening the device (EBUSY another user holds it, ENOENT not on vfio-pci).
    """
    from pyvfio.opener import open_device  # noqa: PLC0415 - opener imports the host package

    value = parse(token)
    with open_device(bdf, kernel=kernel) as dev:
        dev.feature(C.VFIO_DEVICE_FEATURE_PCI_VF_TOKEN, C.VFIO_DEVICE_FEATURE_SET, value.bytes)
    return value
