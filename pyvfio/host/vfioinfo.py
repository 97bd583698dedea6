"""What ``pyvfio info`` reads through VFIO from a bound device: regions, irqs and capabilities.

Opens the device's group in a fresh legacy container (type1), reads ``VFIO_DEVICE_GET_INFO``,
every region and irq index, and closes everything again.  Needs the group to be viable and not
opened by anyone else (EBUSY otherwise).
"""

from __future__ import annotations

import enum
from typing import Any

from pyvfio.host import discover
from pyvfio.kernel import Kernel


def flag_names(flags: enum.IntFlag) -> str:
    """Name the bits of ``flags`` (``READ|WRITE|MMAP``); unnamed bits in hex, ``0`` for none.

    ``str()`` of an IntFlag is its bare number from Python 3.11 on, hence this.
    """
    value = int(flags)
    named = [m for m in type(flags) if m.value and m.value & (m.value - 1) == 0
             and value & m.value]  # single bits only: 3.10 also iterates multi-bit aliases
    rest = value & ~sum(m.value for m in named)
    parts = [str(m.name) for m in named] + ([f"{rest:#x}"] if rest else [])
    return "|".join(parts) or "0"


def read(kernel: Kernel, bdf: str) -> dict[str, Any]:
    """Return device info, regions and irqs of ``bdf`` as a JSON-ready dict.

    Raises:
        OSError: ENOENT (no group node), EBUSY (group open elsewhere), EACCES, or any ioctl errno.
        GroupNotViableError: a group member is bound to a host driver.
    """
    from pyvfio.container import Container  # noqa: PLC0415 - the object API loads cffi
    from pyvfio.group import Group  # noqa: PLC0415

    group = discover.group_of(kernel, bdf)
    if group is None:
        raise FileNotFoundError(2, "device has no IOMMU group", bdf)
    with Container(kernel) as container, Group(group, kernel=kernel) as grp:
        grp.check_viable()
        grp.set_container(container)
        container.set_iommu()
        with grp.open_device(bdf) as dev:
            info = dev.info()
            regions = []
            for i in range(info.num_regions):
                try:
                    r = dev.region_info(i)
                except OSError:
                    continue  # EINVAL: an index the device does not implement (VGA, ROM)
                if r.size:
                    areas = None if r.sparse_areas is None else len(r.sparse_areas)
                    regions.append({"index": i, "size": r.size, "offset": r.offset,
                                    "flags": flag_names(r.flags), "mmap_areas": areas,
                                    "msix_mappable": r.msix_mappable})
            irqs = []
            for i in range(info.num_irqs):
                try:
                    q = dev.irq_info(i)
                except OSError as exc:
                    irqs.append({"index": i, "count": 0, "flags": "", "errno": exc.errno})
                    continue
                irqs.append({"index": i, "count": q.count, "flags": flag_names(q.flags)})
        grp.unset_container()
    return {"flags": flag_names(info.flags), "num_regions": info.num_regions,
            "num_irqs": info.num_irqs,
            "caps": [c.id for c in info.caps], "regions": regions, "irqs": irqs}
