"""Which Linux the fake kernel imitates: ``FakeKernel(linux="6.12")``.

The version is a first-class parameter of the fake: the ioctl table (:mod:`pyvfio.fake.ioctls`)
keeps only the ioctls that version has (the others answer ENOTTY as on that kernel), and a handler
whose errno changed between versions asks :attr:`pyvfio.fake.uaccess.IoctlArg.linux`
(``io.linux >= "6.13"``).  The default is the newest version the VM lane verifies.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import total_ordering

SUPPORTED = ("6.12", "7.3")
"""The versions the VM lane boots and the fake answers as (oldest first)."""

DEFAULT = SUPPORTED[-1]


@total_ordering
@dataclass(frozen=True)
class Linux:
    """A kernel version ``major.minor``; compares with another Linux or a ``"6.13"`` string."""

    major: int
    minor: int

    @classmethod
    def parse(cls, text: str | Linux) -> Linux:
        """Return the version of ``"6.12"`` (a patch level such as ``"6.12.117"`` is ignored).

        Raises:
            ValueError: not ``major.minor`` with decimal numbers.
        """
        if isinstance(text, Linux):
            return text
        parts = str(text).split(".")
        if len(parts) < 2 or not all(p.isascii() and p.isdigit() for p in parts[:2]):
            raise ValueError(f"linux must look like '6.12', not {text!r}")
        return cls(int(parts[0]), int(parts[1]))

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"

    def at_least(self, version: str) -> bool:
        """Tell whether this kernel is ``version`` or newer (``io.linux.at_least("6.13")``)."""
        return not self < Linux.parse(version)

    def __lt__(self, other: object) -> bool:
        if isinstance(other, str):
            other = Linux.parse(other)
        if not isinstance(other, Linux):
            return NotImplemented
        return (self.major, self.minor) < (other.major, other.minor)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):
            other = Linux.parse(other)
        if not isinstance(other, Linux):
            return NotImplemented
        return (self.major, self.minor) == (other.major, other.minor)

    def __hash__(self) -> int:
        return hash((self.major, self.minor))


def resolve(linux: str | Linux | None) -> Linux:
    """Return the version asked for (None: :data:`DEFAULT`).

    A version between two of :data:`SUPPORTED` gets the ioctls it had (their ``since``), but
    only the supported ones are checked against a real kernel in the VM lane.

    Raises:
        ValueError: not a version, or outside ``SUPPORTED[0]..SUPPORTED[-1]``.
    """
    version = Linux.parse(DEFAULT if linux is None else linux)
    if not Linux.parse(SUPPORTED[0]) <= version <= Linux.parse(SUPPORTED[-1]):
        raise ValueError(f"linux={str(linux)!r}: the fake imitates {SUPPORTED[0]} to {DEFAULT}")
    return version
