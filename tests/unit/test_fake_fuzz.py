"""Hypothesis fuzzing of the fake kernel's ioctl entry, on every fd kind (issue 15).

Random requests (the kernel's, their numbers with other type/size bits, anything), random
arguments (by-value integers, and structs whose size word sits around each ioctl's minimum and
whose other words are zeros, edge values, non-canonical addresses or pointers into a scratch
page), sequences of up to six calls on a fresh fake host.  The fake must answer every call with
an ``OSError`` or a result — no other exception, no hang — and once the fds are closed nothing
may be left: no fake fd, no mapping, no eventfd reference, no real fd.

Fake-only: random ioctls on a real kernel would reset, map and bind real hardware at random; the
fake's answers are held to Linux's by the conformance suite and the differential replay.

The default run is bounded for the host suite; a longer run is one command::

    PYVFIO_FUZZ_EXAMPLES=20000 .venv/bin/python -m pytest -q -p no:cacheprovider \\
        tests/unit/test_fake_fuzz.py
"""

from __future__ import annotations

import contextlib
import os
import struct
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyvfio import uapi
from pyvfio._ffi import C, ffi, new
from pyvfio.fake import FakeKernel, standard_host
from pyvfio.fake import ioctls as fioctls

EXAMPLES = int(os.environ.get("PYVFIO_FUZZ_EXAMPLES", "25"))
EDU = "0000:00:01.0"
SCRATCH = ffi.new("char[]", 3 * 4096)  # pointers the fuzzer may pass: real, writable memory
SCRATCH_ADDR = int(ffi.cast("uintptr_t", SCRATCH))
KNOWN = sorted({int(r) for r in (uapi.IOCTLS | uapi.TEST_IOCTLS).values()})
SIZES = sorted({n for op in fioctls.ALL_OPS for n in (op.minsz - 1, op.minsz, op.sizeof,
                                                        op.sizeof + 8) if op.ctype} | {0})


def _group(k: FakeKernel) -> int:
    return k.open("/dev/vfio/1")


def _container_set(k: FakeKernel) -> int:
    c, g = k.open("/dev/vfio/vfio"), _group(k)
    k.ioctl(g, uapi.VFIO_GROUP_SET_CONTAINER, ffi.new("int32_t *", c))
    k.ioctl(c, uapi.VFIO_SET_IOMMU, C.VFIO_TYPE1v2_IOMMU)
    return c


def _device(k: FakeKernel) -> int:
    c, g = k.open("/dev/vfio/vfio"), _group(k)
    k.ioctl(g, uapi.VFIO_GROUP_SET_CONTAINER, ffi.new("int32_t *", c))
    k.ioctl(c, uapi.VFIO_SET_IOMMU, C.VFIO_TYPE1v2_IOMMU)
    return k.ioctl(g, uapi.VFIO_GROUP_GET_DEVICE_FD, ffi.new("char[]", EDU.encode()))


def _cdev(k: FakeKernel) -> int:
    name = k.sysfs_listdir(f"bus/pci/devices/{EDU}/vfio-dev")[0]
    return k.open(f"/dev/vfio/devices/{name}")


def _cdev_bound(k: FakeKernel) -> int:
    fd, cdev = k.open("/dev/iommu"), _cdev(k)
    k.ioctl(cdev, uapi.VFIO_DEVICE_BIND_IOMMUFD, new("struct vfio_device_bind_iommufd *",
                                                     argsz=16, iommufd=fd))
    return cdev


def _fault(k: FakeKernel) -> int:
    arg = new("struct iommu_fault_alloc *")
    k.ioctl(k.open("/dev/iommu"), uapi.IOMMU_FAULT_QUEUE_ALLOC, arg)
    return int(arg.out_fault_fd)


OPENERS: dict[str, Callable[[FakeKernel], int]] = {
    "container": lambda k: k.open("/dev/vfio/vfio"),
    "container-type1": _container_set,
    "group": _group,
    "device": _device,
    "cdev-unbound": _cdev,
    "cdev": _cdev_bound,
    "iommufd": lambda k: k.open("/dev/iommu"),
    "iommufd-fault": _fault,
}

requests = st.one_of(
    st.sampled_from(KNOWN),
    st.builds(lambda nr, high: (high << 16) | 0x3B00 | nr, st.integers(0, 0xFF),
              st.integers(0, 0xFFFF)),
    st.integers(0, 0xFFFFFFFF),
)
words = st.one_of(
    st.sampled_from([0, 1, 2, 3, 4096, 0xFFFFFFFF, (1 << 63), (1 << 64) - 1]),
    st.integers(0, 0xFFFFFFFF),
    st.integers(0, 8191).map(lambda off: SCRATCH_ADDR + off),  # valid, writable memory
    st.integers(1 << 48, (1 << 64) - 1),  # non-canonical: EFAULT
)


@st.composite
def arguments(draw: Any) -> tuple[str, Any]:
    """A by-value integer, or a struct: a size word, then random words."""
    if draw(st.booleans()):
        return "int", draw(st.one_of(st.integers(0, 16), st.integers(-(1 << 31), 1 << 40)))
    size = draw(st.one_of(st.sampled_from(SIZES), st.integers(0, 0xFFFFFFFF)))
    body = draw(st.lists(words, min_size=0, max_size=12))
    raw = b"".join(struct.pack("<Q", w) for w in body)
    return "struct", struct.pack("<I", size) + raw[4:]


calls = st.lists(st.tuples(requests, arguments()), min_size=1, max_size=6)


def _real_fds() -> set[int]:
    return {int(fd) for fd in os.listdir("/proc/self/fd")}


@pytest.fixture
def real_fds() -> Iterator[set[int]]:
    yield _real_fds()


@pytest.mark.parametrize("kind", sorted(OPENERS))
@settings(max_examples=EXAMPLES, deadline=5000, suppress_health_check=[
    HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(calls=calls)
def test_random_ioctls_only_oserror_nothing_left(kind: str, calls: list[tuple[int, Any]],
                                                  real_fds: set[int]) -> None:
    k = standard_host(iommufd=True)
    fd = OPENERS[kind](k)
    space = k.file(fd).space()  # type: ignore[union-attr]
    assert space in fioctls.spaces(cdev_config=True)
    for request, (how, value) in calls:
        arg: Any = value
        if how == "struct":
            buf = ffi.new("char[]", max(len(value), 64) + 64)  # zeroed slack after the struct
            ffi.memmove(buf, value, len(value))
            arg = buf
        with contextlib.suppress(OSError):  # any errno is an answer; nothing else is
            k.ioctl(fd, request, arg)
    for open_fd in sorted(k._files, reverse=True):  # newest first, as a process exit would
        k.close(open_fd)
    k.assert_clean()
    assert _real_fds() <= real_fds, "a real fd leaked"
