"""Test vocabulary of the kernel selftests: expect_ok / expect_errno."""

from __future__ import annotations

import errno as _errno
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

T = TypeVar("T")


def expect_ok(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call ``fn`` and return its result; any exception fails the test with its errno spelled out."""
    try:
        return fn(*args, **kwargs)
    except OSError as exc:
        name = _errno.errorcode.get(exc.errno or 0, exc.errno)
        pytest.fail(f"expected success, got {name} from {exc.filename}: {exc}")


def expect_errno(err: int, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> OSError:
    """Call ``fn`` and require it to raise ``OSError`` with ``errno == err``; return the error."""
    want = _errno.errorcode[err]
    try:
        result = fn(*args, **kwargs)
    except OSError as exc:
        got = _errno.errorcode.get(exc.errno or 0, str(exc.errno))
        assert exc.errno == err, f"expected {want}, got {got}: {exc}"
        return exc
    pytest.fail(f"expected {want}, got success ({result!r})")
