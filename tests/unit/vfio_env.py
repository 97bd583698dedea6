"""Shared set-up for the object-API unit tests: an opened edu and the example loader (the fake
host itself is the pytest plugin's ``fake_kernel``, pyvfio.testing)."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyvfio.container import Container
from pyvfio.device import Device
from pyvfio.group import Group
from tests.conftest import Host


@dataclass
class Opened:
    """A container with the edu's group joined, the IOMMU set and the edu device open."""

    host: Host
    container: Container
    group: Group
    device: Device


@contextmanager
def opened_edu(host: Host) -> Iterator[Opened]:
    """Open container, group and device of the lone edu; close them all on exit."""
    with Container(host.kernel) as container, Group(host.edu_group, kernel=host.kernel) as group:
        group.set_container(container)
        container.set_iommu()
        with group.open_device(host.edu) as device:
            yield Opened(host, container, group, device)


def load_example(name: str = "edu_dma") -> Any:
    """Import ``examples/<name>.py`` (not a package) as a fresh module."""
    path = Path(__file__).resolve().parents[2] / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"example_{name}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
