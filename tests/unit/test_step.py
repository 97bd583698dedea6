"""pyvfio.errors.step: a driver step turns kernel refusals into DriverError, errno kept."""

from __future__ import annotations

import errno

import pytest

from pyvfio.errors import DriverError, step


def test_oserror_becomes_driver_error_with_errno() -> None:
    refused = r"enable MSI: the kernel or device refused"
    with pytest.raises(DriverError, match=refused) as info, step("enable MSI"):
        raise OSError(errno.EINVAL, "Invalid argument", "VFIO_DEVICE_SET_IRQS")
    assert info.value.step == "enable MSI" and info.value.errno == errno.EINVAL


def test_driver_error_passes_unchanged() -> None:
    inner = DriverError("map", "no IOVA")
    with pytest.raises(DriverError) as info, step("outer"):
        raise inner
    assert info.value is inner


def test_other_exceptions_pass_and_hint_is_kept() -> None:
    with pytest.raises(KeyError), step("x"):
        raise KeyError("k")
    with pytest.raises(DriverError, match="hint: turn it on") as info, step("y", hint="turn it on"):
        raise ValueError("bad")
    assert isinstance(info.value.cause, ValueError)


def test_a_value_error_is_not_called_a_kernel_refusal() -> None:
    """Issue 11: a caller's ValueError is pyvfio's check, not the kernel's answer."""
    with pytest.raises(DriverError, match="refused before any system call") as info, \
            DriverError.during("map BAR0"):
        raise ValueError("region 0 is not mmappable")
    assert "kernel" not in info.value.message and info.value.errno is None
