"""The fd-owner pattern of every pyvfio object that holds a file descriptor (DESIGN §5).

``close()`` is idempotent and closes children first; a forgotten owner is closed by a
``weakref.finalize`` that emits a ResourceWarning (as CPython's ``tempfile``;
no ``__del__``).
"""

from __future__ import annotations

import contextlib
import warnings
import weakref
from typing import Any, TypeVar

from pyvfio.kernel import Kernel

_T = TypeVar("_T", bound="FdOwner")


def _finalize(kernel: Kernel, fd: int, message: str) -> None:
    warnings.warn(message, ResourceWarning, stacklevel=2)
    with contextlib.suppress(OSError):  # at finalization there is nobody left to tell
        kernel.close(fd)


class FdOwner:
    """Base of fd owners: ``fileno()``, ``close()``, ``closed``, context manager, finalizer."""

    _fd: int = -1
    _kernel: Kernel
    _finalizer: weakref.finalize[Any, Any] | None = None
    _closing = False

    def _own(self, kernel: Kernel, fd: int) -> None:
        """Take ownership of ``fd``; from now on a forgotten ``self`` warns and closes it."""
        self._kernel, self._fd = kernel, fd
        self._finalizer = weakref.finalize(self, _finalize, kernel, fd, f"unclosed {self!r}")

    @property
    def closed(self) -> bool:
        """True once closed (or never opened)."""
        return self._fd < 0

    def fileno(self) -> int:
        """Return the fd.

        Raises:
            ValueError: the object is closed.
        """
        self._check_open()
        return self._fd

    def _check_open(self) -> None:
        if self._fd < 0:
            raise ValueError(f"I/O operation on closed {self!r}")

    def _close_children(self) -> None:
        """Close whatever must be closed before this fd (overridden by parents)."""

    def close(self) -> None:
        """Close children first, then the fd; idempotent.

        Raises:
            OSError: closing the fd failed (it is forgotten anyway).
        """
        if self._fd < 0 or self._closing:
            return  # closed, or a child closing its parents while the parent closes it
        self._closing = True
        try:
            self._close_children()
        finally:
            fd, self._fd = self._fd, -1
            self._closing = False
            if self._finalizer is not None:
                self._finalizer.detach()
            self._kernel.close(fd)

    def __enter__(self: _T) -> _T:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
