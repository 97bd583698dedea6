"""The VFIO container API answered by an iommufd (drivers/iommu/iommufd/vfio_compat.c).

A :class:`CompatContainer` is a :class:`pyvfio.container.Container` whose fd is an
:class:`pyvfio.iommufd.IOMMUFD`'s: groups join it with ``VFIO_GROUP_SET_CONTAINER`` (the kernel
then creates the compat IOAS and binds each device opened through the group to it), and the type1
DMA methods act on the compat IOAS.  The kernel's differences from type1 show through unchanged:
with no compat IOAS the DMA ioctls are ENODEV, an unmap that would split a mapping is ENOENT
(type1v2: EINVAL), dirty tracking is ENOTTY, there is no vaddr update, and the mappings belong to
the IOAS, so they outlive the groups.
"""

from __future__ import annotations

import errno
import weakref
from typing import TYPE_CHECKING

from pyvfio import uapi
from pyvfio.container import Container
from pyvfio.errors import CloseError
from pyvfio.ioas import still_mapped

if TYPE_CHECKING:
    from pyvfio.group import Group
    from pyvfio.iommufd import IOAS, IOMMUFD


class CompatContainer(Container):
    """The VFIO-compat container of an iommufd.  A :class:`pyvfio.space.DMASpace`.

    The fd is the iommufd's (borrowed, never closed here); closing the iommufd closes this
    container and its groups first.
    """

    def __init__(self, iommufd: IOMMUFD, ioas: IOAS | None = None) -> None:
        """Use ``iommufd`` as a VFIO container.

        Args:
            iommufd: the /dev/iommu context.
            ioas: make this IOAS the compat IOAS (``IOMMU_VFIO_IOAS`` SET); None keeps the
                current one, or lets the first group's SET_CONTAINER create one.

        Raises:
            ValueError: ``iommufd`` is closed.
            OSError: ENOENT (``ioas`` is not an IOAS of ``iommufd``).
        """
        self.iommufd = iommufd
        self.iommu_type: int | None = None
        self._groups: weakref.WeakSet[Group] = weakref.WeakSet()
        self._init_dma()
        if ioas is not None:
            iommufd.set_vfio_ioas(ioas)
        self._kernel, self._fd = iommufd.kernel, iommufd.fileno()  # borrowed: no finalizer
        iommufd._adopt(self)

    def __repr__(self) -> str:
        return f"<CompatContainer of {self.iommufd!r}>"

    def _check_open(self) -> None:
        if self.iommufd.closed:
            self._fd = -1
        super()._check_open()

    def close(self) -> None:
        """Close the groups that joined and unmap this container's mappings; idempotent.

        The iommufd stays open (closing it closes this container first).  A failing step does
        not stop the others; the table is forgotten all the same.

        Raises:
            CloseError: a group failed to close or the kernel refused an unmap (``failures``
                names each with its exception).  ENOENT is not a failure: the mapping was gone
                already (its IOAS changed under the container).
        """
        if self._fd < 0:
            return
        failures: list[tuple[str, BaseException]] = []
        for group in list(self._groups):
            CloseError.attempt(failures, f"close {group!r}", group.close)
        if not self.iommufd.closed:
            for mapping in self.mappings():
                try:
                    self._unmap_dma(0, mapping.iova, mapping.size)
                except OSError as exc:
                    if exc.errno != errno.ENOENT:
                        failures.append((f"unmap IOVA {mapping.iova:#x}+{mapping.size:#x}", exc))
        self._release_all()
        self._fd = -1
        if failures:
            raise CloseError(repr(self), failures)

    @property
    def _cuts_mappings(self) -> bool:  # type: ignore[override]
        # SET_IOMMU(VFIO_TYPE1_IOMMU) turns the IOAS's huge pages off so an unmap may cut an
        # area (vfio_compat.c:iommufd_vfio_set_iommu, iommufd_vfio_unmap_dma)
        return self.iommu_type == uapi.IOMMUType.TYPE1

    def unmap(self, iova: int, size: int) -> int:
        """Unmap ``[iova, iova + size)`` of the compat IOAS; return the bytes unmapped.

        Raises:
            TypeError, ValueError: ``iova``/``size`` not ints in range, ``size`` 0.
            OSError: ENOENT if the range would split a mapping (type1v2 mode; the mappings the
                kernel removed before it found that one are forgotten: it does not roll back).
        """
        with self._lock:
            try:
                return Container.unmap(self, iova, size)
            except OSError as exc:
                ioas = self.ioas_id if exc.errno == errno.ENOENT else None
                if ioas is not None:  # iopt_unmap_iova_range removed areas before failing
                    for start in self._index().irange(iova, iova + size):
                        m = self._table[start]
                        if m.iova + m.size <= iova + size and \
                                not still_mapped(self.iommufd, ioas, m.iova, m.size):
                            self._remove(m)
                raise

    unmap_dma = unmap

    @property
    def ioas_id(self) -> int | None:
        """The id of the compat IOAS (``IOMMU_VFIO_IOAS`` GET), or None if there is none."""
        return self.iommufd.vfio_ioas()

    def _detach(self, group: Group) -> None:
        # unlike a legacy container, the compat IOAS keeps its mappings when groups leave
        self._groups.discard(group)
