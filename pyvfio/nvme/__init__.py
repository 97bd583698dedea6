"""pyvfio's NVMe driver, built on the driver kit only (see :mod:`pyvfio.nvme.controller`)."""

from __future__ import annotations

from pyvfio.nvme.controller import ControllerInfo, Namespace, NvmeController
from pyvfio.nvme.spec import NvmeError

__all__ = ["ControllerInfo", "Namespace", "NvmeController", "NvmeError"]
