"""The device name of VFIO_GROUP_GET_DEVICE_FD and the SR-IOV VF token it may carry.

vfio_pci_core.c:``vfio_pci_core_match`` takes ``"<BDF>"`` or ``"<BDF> vf_token=<uuid>"`` (spaces
around options allowed, each option once); ``vfio_pci_validate_vf_token`` then decides, from what
the device is:

- a VF whose PF is bound to vfio-pci: the token is required (EACCES without) and must equal the
  PF's (EACCES);  a VF whose PF is not on vfio-pci: a token is EINVAL, none is fine;
- a PF on vfio-pci: while some VF is open the token is required and must match (EACCES); with no
  VF open a token given becomes the PF's token;
- anything else: a token is EINVAL.

A PF's token is random from its binding to vfio-pci on (vfio_pci_vf_init: ``uuid_gen``, in 6.12
and 7.3); VFIO_DEVICE_FEATURE_PCI_VF_TOKEN sets it (:meth:`VFTokens.feature`: SET only, a PF on
vfio-pci only).  Which device is a VF or a PF comes from the fake's sysfs (``physfn`` link,
``sriov_totalvfs``), as :func:`pyvfio.fake.sriov.add_sriov` builds it.
"""

from __future__ import annotations

import errno
import os
import re
import uuid
from collections.abc import Callable, Iterable

from pyvfio._ffi import C
from pyvfio.fake.memory import kerr
from pyvfio.fake.migration import check_feature
from pyvfio.fake.sysfs import SysfsTree

UUID_STRING_LEN = 36
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_ARG = "vf_token="
NIL = "00000000-0000-0000-0000-000000000000"


def match(bdf: str, text: str) -> tuple[bool, str | None]:
    """vfio_pci_core_match: return (matches, token).

    Raises:
        OSError: EINVAL for an unknown or repeated option, or a malformed token.
    """
    if not text.startswith(bdf):
        return False, None
    rest = text[len(bdf):]
    if not rest:
        return True, None
    if rest[0] != " ":
        return False, None  # non-whitespace after the name: another device's name
    token: str | None = None
    rest = rest.lstrip(" ")
    while rest:
        if token is not None or not rest.startswith(_ARG):
            raise kerr(errno.EINVAL)  # unknown or duplicate option
        rest = rest[len(_ARG):]
        if len(rest) < UUID_STRING_LEN or not _UUID.fullmatch(rest[:UUID_STRING_LEN]):
            raise kerr(errno.EINVAL)  # uuid_parse
        token, rest = rest[:UUID_STRING_LEN].lower(), rest[UUID_STRING_LEN:].lstrip(" ")
    return True, token


class VFTokens:
    """The VF tokens of the PFs bound to vfio-pci (``vdev->vf_token``)."""

    def __init__(self, sysfs: SysfsTree, driver_of: Callable[[str], str | None],
                 open_devices: Callable[[], Iterable[str]],
                 binding: Callable[[str], object] = lambda bdf: None) -> None:
        self._sysfs = sysfs
        self._driver_of = driver_of
        self._open = open_devices
        self._binding = binding  # which vfio-pci binding of a PF (a rebind makes a new token)
        self._tokens: dict[tuple[str, object], str] = {}

    def token(self, pf: str) -> str:
        """The token of PF ``pf`` on vfio-pci: random until set (uuid_gen at the bind)."""
        key = (pf, self._binding(pf))
        return self._tokens.setdefault(key, str(uuid.uuid4()))

    def set_token(self, pf: str, token: str) -> None:
        """Replace the token of PF ``pf``."""
        self._tokens[(pf, self._binding(pf))] = token

    def _pf_of(self, bdf: str) -> str | None:
        link = f"bus/pci/devices/{bdf}/physfn"
        return os.path.basename(self._sysfs.readlink(link)) if self._sysfs.exists(link) else None

    def _is_vfio_pf(self, bdf: str) -> bool:
        return (self._sysfs.exists(f"bus/pci/devices/{bdf}/sriov_totalvfs")
                and self._driver_of(bdf) == "vfio-pci")

    def validate(self, bdf: str, token: str | None) -> None:
        """vfio_pci_validate_vf_token for device ``bdf`` opened with ``token`` (None: none).

        Raises:
            OSError: EINVAL (a token where none belongs), EACCES (missing or wrong token).
        """
        pf = self._pf_of(bdf)
        if pf is not None:
            if not self._is_vfio_pf(pf):
                if token is not None:
                    raise kerr(errno.EINVAL)  # PF not bound to vfio-pci
                return
            if token is None or token != self.token(pf):
                raise kerr(errno.EACCES)
        elif self._is_vfio_pf(bdf):
            vfs_open = any(self._pf_of(d) == bdf for d in self._open())
            if vfs_open:
                if token is None or token != self.token(bdf):
                    raise kerr(errno.EACCES)
            elif token is not None:
                self.set_token(bdf, token)
        elif token is not None:
            raise kerr(errno.EINVAL)  # neither PF nor VF

    def feature(self, bdf: str, flags: int, payload: Callable[[], bytes], size: int) -> int:
        """vfio_pci_core_feature_token: ENOTTY unless ``bdf`` is a PF on vfio-pci; SET only
        (GET is EINVAL: the token stays secret), a 16-byte UUID (``payload()`` reads it)."""
        if not self._is_vfio_pf(bdf):
            raise kerr(errno.ENOTTY)
        if check_feature(flags, size, C.VFIO_DEVICE_FEATURE_SET, 16):
            self.set_token(bdf, str(uuid.UUID(bytes=payload()[:16])))
        return 0

    def check_bind(self, bdf: str, flags: int, payload: Callable[[], bytes]) -> None:
        """device_cdev.c:vfio_df_check_token for a vfio-pci device: the token (read by
        ``payload()`` when VFIO_DEVICE_BIND_FLAG_TOKEN is set) goes through :meth:`validate`."""
        token = None
        if flags & C.VFIO_DEVICE_BIND_FLAG_TOKEN:
            token = str(uuid.UUID(bytes=payload()[:16]))
        self.validate(bdf, token)
