"""Divergences of the fake from Linux that the replay knows about, each with its reason.

A key is a divergence kind as test_replay.signature spells it; the replay passes when every
diverging sequence's first differing op is of a listed kind, and fails on any other.  Every
entry is a fake bug not understood or not fixed yet: the list only shrinks.
"""

from __future__ import annotations

KNOWN: dict[str, str] = {
    # debian-6.12.117 type1: 3 of 10000 sequences; the command/status register read back after
    # a sequence of config writes differs in a bit the fake does not model yet (the QEMU edu
    # command wmask is modelled; what remains needs the sequences read op by op:
    # python -m tests.differential.show type1 SEED tests/differential/recordings/debian-*)
    "pread region 7 @0x4: bytes differ": "edu COMMAND after config writes (3 of 10000, type1)",
    "pread region 7 @0x6: bytes differ": "edu STATUS after config writes (1 of 10000, type1)",
    # iommufd-6.12.117 (first recording; iommufd and compat modes), not analysed yet:
    'VFIO_DEVICE_ATTACH_IOMMUFD_PT: real EFAULT / fake 0': 'ATTACH copy-back fault (argument at an unwritable place)',
    'VFIO_GROUP_GET_STATUS: bytes differ': 'group status flags with an iommufd as container',
    'open: real 0 / fake EBUSY': 'group open while a device cdev is open but unbound',
    'VFIO_GROUP_GET_DEVICE_FD: real EFAULT / fake 0': 'GET_DEVICE_FD name at an unreadable address',
}
