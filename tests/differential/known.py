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
    'IOMMU_HWPT_INVALIDATE: bytes differ': 'what INVALIDATE writes back (entry_num) on 6.12',
    'IOMMU_HWPT_INVALIDATE: real ENOENT / fake EINVAL': 'INVALIDATE errno precedence (hwpt id)',
    'IOMMU_OPTION: real ENOTSUP / fake ENOENT': 'IOMMU_OPTION: EOPNOTSUPP checked before the object id',
    'IOMMU_GET_HW_INFO: bytes differ': 'QEMU intel-iommu cap/ecap registers, data_len, capabilities',
    'IOMMU_HWPT_SET_DIRTY_TRACKING: real ENOENT / fake ENOTSUP': 'dirty tracking: id lookup before flags',
    'mmap: real ENODEV / fake ENXIO': 'mmap of an iommufd on 6.12 (no mmap op before 6.13+)',
    'IOMMU_HWPT_ALLOC: real ENOTSUP / fake EINVAL': 'HWPT_ALLOC errno precedence',
    'IOMMU_HWPT_ALLOC: real ENOTSUP / fake ENOENT': 'HWPT_ALLOC errno precedence',
    # the compat container's VFIO_IOMMU_GET_INFO under another name: the generator sends
    # 0x3b70 to the container fd too (VFIO_BASE + 12 is both); goes with the entry below
    'VFIO_DEVICE_GET_PCI_HOT_RESET_INFO: bytes differ': 'compat GET_INFO caps, ioctl 0x3b70 on the container fd',
    'VFIO_DEVICE_ATTACH_IOMMUFD_PT: real EFAULT / fake 0': 'ATTACH copy-back fault (argument at an unwritable place)',
    'VFIO_IOMMU_GET_INFO: bytes differ': 'compat GET_INFO caps (iommufd vfio_compat.c layout)',
    'VFIO_IOMMU_UNMAP_DMA: bytes differ': 'compat UNMAP_DMA copied-back size',
    'VFIO_IOMMU_MAP_DMA: real EINVAL / fake 0': 'compat MAP_DMA argument checks',
    'VFIO_GROUP_GET_STATUS: bytes differ': 'group status flags with an iommufd as container',
    'open: real 0 / fake EBUSY': 'group open while a device cdev is open but unbound',
    'VFIO_GROUP_GET_DEVICE_FD: real EFAULT / fake 0': 'GET_DEVICE_FD name at an unreadable address',
}
