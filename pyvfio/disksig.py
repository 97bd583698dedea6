"""On-disk signatures: what the first bytes of a block device say it holds.

The one copy of these facts, below both their users: the host's in-use check
(:mod:`pyvfio.host.inuse` refuses to unbind a disk holding a filesystem) and the fake host
(:mod:`pyvfio.fake.hostenv` lays such a disk out), so the fake needs no host tooling.
"""

from __future__ import annotations

SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    # (offset, magic, what), after util-linux libblkid's probers
    (0x438, b"\x53\xef", "ext2/3/4 filesystem"),
    (0, b"XFSB", "xfs filesystem"),
    (0x10040, b"_BHRfS_M", "btrfs filesystem"),
    (4086, b"SWAPSPACE2", "swap signature"),
    (4086, b"SWAP-SPACE", "swap signature"),
    (0x218, b"LVM2 001", "LVM2 physical volume"),
    (0x1000, b"\xfc\x4e\x2b\xa9", "Linux RAID member"),
    (0x200, b"EFI PART", "GPT partition table"),
    (3, b"NTFS    ", "ntfs filesystem"),
    (0x52, b"FAT32   ", "vfat filesystem"),
    (0x36, b"FAT1", "vfat filesystem"),
    (0x8001, b"CD001", "iso9660 filesystem"),
    (0x1FE, b"\x55\xaa", "MBR partition table"),
)
HEAD_SIZE = 0x10048
"""Bytes to read from a device's start to see every signature."""


def signature(head: bytes) -> str | None:
    """Return what the first bytes of a block device hold (``ext2/3/4 filesystem``), or None."""
    for offset, magic, what in SIGNATURES:
        if magic and head[offset : offset + len(magic)] == magic:
            return what
    return None


def head_with(what: str) -> bytes:
    """The shortest device head carrying the first signature named ``what``.

    Raises:
        ValueError: no signature is named ``what``.
    """
    for offset, magic, name in SIGNATURES:
        if name == what:
            return bytes(offset) + magic
    raise ValueError(f"what: no signature named {what!r}")
