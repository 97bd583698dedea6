"""Fault injection of the fake kernel: fail the n-th call of one ioctl, or the n-th operation.

``inject`` fails an ioctl by name or number before its handler runs (nothing changes), the way a
test makes one kernel call refuse; ``fail_nth`` fails whatever operation (open, ioctl, mmap) comes
n-th, the way the kernel selftests' fail-nth sweep walks every error path of a sequence.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass

from pyvfio.fake.memory import kerr


@dataclass
class _Injection:
    key: str | int
    err: int
    nth: int
    seen: int = 0


class FaultInjector:
    """The armed faults of one fake kernel."""

    def __init__(self) -> None:
        self._injections: list[_Injection] = []
        self._fail_nth: tuple[int, int] | None = None

    def inject(self, request: int | str, err: int, nth: int = 1) -> None:
        """Fail the ``nth`` next call of ioctl ``request`` (an Ioctl, a number or a kernel name)
        with ``err``, before the handler runs (nothing changes)."""
        key: str | int = request if isinstance(request, str) else getattr(request, "name", None) \
            or int(request)
        self._injections.append(_Injection(key, err, nth))

    def fail_nth(self, nth: int | None, err: int = errno.ENOMEM) -> None:
        """Fail the ``nth`` next operation (open, ioctl or mmap) with ``err``; None disarms."""
        self._fail_nth = None if nth is None else (nth, err)

    @property
    def pending(self) -> bool:
        """True while an armed :meth:`fail_nth` has not fired yet."""
        return self._fail_nth is not None

    def operation(self, name: str) -> None:
        """Count one operation; raise the armed errno if it is the n-th."""
        if self._fail_nth is not None:
            nth, err = self._fail_nth
            self._fail_nth = (nth - 1, err) if nth > 1 else None
            if nth == 1:
                raise kerr(err, name)

    def ioctl(self, name: str, request: int) -> None:
        """Count one call of ioctl ``name``; raise an injected errno if its turn has come."""
        for rule in self._injections:
            if rule.key in (name, request):
                rule.seen += 1
                if rule.seen == rule.nth:
                    self._injections.remove(rule)
                    raise kerr(rule.err)
