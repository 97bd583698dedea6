"""A FakeKernel for the iommufd unit tests: /dev/iommu and fault fds, no PCI devices.

The same FakeKernel (and so the same ioctl dispatch table) as the conformance suite; only the
IOMMU model is chosen by the test.
"""

from __future__ import annotations

from typing import Any

from pyvfio.fake import FakeKernel
from pyvfio.fake.iommufd import IOMMUModel


class IommuOnlyKernel(FakeKernel):
    """A FakeKernel with /dev/iommu, no device, and the IOMMU ``model`` given."""

    def __init__(self, model: IOMMUModel | None = None) -> None:
        super().__init__(iommufd=True)
        if model is not None:
            self.iommu.model = model

    @property
    def files(self) -> dict[int, Any]:
        """The open fake files by fd."""
        return self._files
