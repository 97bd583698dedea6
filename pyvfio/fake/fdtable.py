"""The fake kernel's fd table: fake files by fd number, and the real eventfds it handed out.

Fake fds count up from 10001, so a leaked fake fd can never close a real one.
"""

from __future__ import annotations

from collections.abc import Iterator

from pyvfio.fake.irq import FAKE_FDS
from pyvfio.fake.uaccess import FakeFile

FIRST_FD = 10001


class FdTable:
    """Open fake files by fd, plus the real eventfds created through the fake."""

    def __init__(self) -> None:
        self.files: dict[int, FakeFile] = {}
        self.eventfds: set[int] = set()
        self._next = FIRST_FD

    def __len__(self) -> int:
        return len(self.files)

    def install(self, f: FakeFile) -> int:
        """Give ``f`` the next fd and return it."""
        fd, self._next = self._next, self._next + 1
        self.files[fd] = f
        FAKE_FDS.add(fd)
        return fd

    def get(self, fd: int) -> FakeFile | None:
        """Return the fake file behind ``fd``, or None."""
        return self.files.get(fd)

    def pop(self, fd: int) -> FakeFile | None:
        """Remove ``fd`` from the table; return its file (None if it was not a fake fd)."""
        FAKE_FDS.discard(fd)
        return self.files.pop(fd, None)

    def __iter__(self) -> Iterator[FakeFile]:
        return iter(list(self.files.values()))
