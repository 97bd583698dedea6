"""pytest plugin: which ioctls (and VFIO device features) each passing test issued on a real kernel.

Load it with ``-p tests.ioctl_recorder --record-ioctls DIR``.  In the VM lane::

    tools/vm/run --profile iommufd-7.3 --jobs 1 -- -q -m "not fake_only" \\
        -p tests.ioctl_recorder --record-ioctls . tests/conformance

A relative DIR is taken inside ``$PYVFIO_VM_RESULTS`` in the guest, so ``.`` lands in
``results/vm-<profile>/`` on the host.  Every ioctl through :class:`pyvfio.kernel.LinuxKernel` is
noted for the running test — its name (:mod:`pyvfio.uapi`), and for VFIO_DEVICE_FEATURE the
feature index from the argument's ``flags`` — with whether it returned or failed.  When a test
passes, one JSON line goes to ``DIR/ioctls.jsonl`` (emptied when the run starts)::

    {"test": nodeid, "profile": ..., "linux": "7.3.4-...", "ok": [names], "failed": [names]}

Tests that fail, skip or issue nothing on a real kernel write nothing.  tools/uapi_coverage.py
reads these files.  Without the option the plugin changes nothing (LinuxKernel.ioctl stays the
hot path it is).
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterator
from typing import Any

import pytest

from pyvfio import _ioctl, uapi
from pyvfio._ffi import C, ffi
from pyvfio.kernel import LinuxKernel
from pyvfio.uapi_vfio import DeviceFeature

NAMES: dict[int, str] = {}
for _request in uapi.IOCTLS.values():  # sPAPR's REGISTER_MEMORY shares VFIO_DEVICE_FEATURE's nr
    NAMES.setdefault(int(_request), _request.name)
FEATURES = {int(f): f"VFIO_DEVICE_FEATURE_{f.name}" for f in DeviceFeature}


class Recorder:
    """The running test's ioctls: names that returned, names that failed."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.ok: set[str] | None = None
        self.failed: set[str] = set()
        self.passed = False  # the call phase passed; written once teardown passes too

    def note(self, request: int, arg: Any, returned: bool) -> None:
        if self.ok is None:
            return  # outside a test (collection, session fixtures)
        names = [getattr(request, "name", None) or NAMES.get(int(request), f"{int(request):#x}")]
        if int(request) == int(uapi.VFIO_DEVICE_FEATURE):
            feature = _feature(arg)
            if feature is not None:
                names.append(FEATURES.get(feature, f"VFIO_DEVICE_FEATURE {feature}"))
        (self.ok if returned else self.failed).update(names)

    def write(self, item: pytest.Item) -> None:
        assert self.ok is not None
        if not self.ok and not self.failed:
            return  # a test that issued nothing on a real kernel (the fake's, or no ioctl)
        line = {"test": item.nodeid, "profile": os.environ.get("PYVFIO_VM_PROFILE", "host"),
                "linux": os.uname().release, "ok": sorted(self.ok),
                "failed": sorted(self.failed - self.ok)}
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")


def _feature(arg: Any) -> int | None:
    """The feature index in a struct vfio_device_feature argument (flags & MASK)."""
    if not isinstance(arg, ffi.CData):
        return None
    try:
        raw = bytes(ffi.buffer(arg, 8))
    except (TypeError, ValueError):
        return None
    return int(struct.unpack_from("<I", raw, 4)[0] & C.VFIO_DEVICE_FEATURE_MASK)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--record-ioctls", metavar="DIR", default=None,
                     help="write DIR/ioctls.jsonl: the ioctls each passing test issued on a "
                          "real kernel (relative DIR: under $PYVFIO_VM_RESULTS when set)")


def pytest_configure(config: pytest.Config) -> None:
    out = config.getoption("--record-ioctls")
    if not out:
        return
    if not os.path.isabs(out) and os.environ.get("PYVFIO_VM_RESULTS"):
        out = os.path.join(os.environ["PYVFIO_VM_RESULTS"], out)
    os.makedirs(out, exist_ok=True)
    recorder = Recorder(os.path.join(out, "ioctls.jsonl"))
    open(recorder.path, "w").close()  # one run's records, not an earlier run's too
    original = LinuxKernel.ioctl

    def ioctl(self: LinuxKernel, fd: int, request: int, arg: Any = 0) -> int:
        try:
            rc = original(self, fd, request, arg)
        except OSError:
            recorder.note(request, arg, False)
            raise
        recorder.note(request, arg, True)
        return rc

    LinuxKernel.ioctl = ioctl  # type: ignore[method-assign]
    # pyvfio._ioctl.call issues LinuxKernel's fcntl path itself (a frame less on the hot path):
    # while recording, every call goes through kernel.ioctl, so through the wrapper above
    _ioctl.call = lambda kernel, fd, request, arg=0: kernel.ioctl(fd, request, arg)
    config.stash[_KEY] = recorder


_KEY = pytest.StashKey[Recorder]()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    recorder = item.config.stash.get(_KEY, None)
    if recorder is not None:
        recorder.ok, recorder.failed = set(), set()
    yield
    if recorder is not None:
        recorder.ok = None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    recorder = item.config.stash.get(_KEY, None)
    report = outcome.get_result()  # type: ignore[attr-defined]
    if recorder is None or recorder.ok is None:
        return
    if report.when == "call":
        recorder.passed = report.passed
    elif report.when == "teardown" and recorder.passed:
        recorder.passed = False
        if report.passed:
            recorder.write(item)
