"""tools/uapi_coverage.py and the lane's ioctl recorder (tests/ioctl_recorder.py)."""

from __future__ import annotations

import json
import os
import sys
import termios
from pathlib import Path
from typing import ClassVar

import pytest

from pyvfio import _ioctl, uapi
from pyvfio._ffi import C, ffi, new
from pyvfio.kernel import LinuxKernel
from pyvfio.uapi_vfio import DeviceFeature
from tests import ioctl_recorder

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
import uapi_coverage


def test_every_ioctl_and_feature_has_a_row() -> None:
    page = uapi_coverage.render({})
    for name in [*uapi.IOCTLS, *(f"VFIO_DEVICE_FEATURE_{f.name}" for f in DeviceFeature)]:
        assert f"| `{name}` |" in page, name


def test_wrappers_follow_private_helpers() -> None:
    """IOAS_MAP is issued by the private IOAS._raw_map: DMASpace.map reaches it."""
    found = uapi_coverage.wrappers()
    assert "pyvfio.space.DMASpace.map" in found["IOMMU_IOAS_MAP"]
    assert "pyvfio.ioas.IOAS.noiommu_get_pa" in found["IOMMU_IOAS_NOIOMMU_GET_PA"]
    assert not any(q.startswith("pyvfio.fake.") for qs in found.values() for q in qs)


def test_faked_is_the_dispatch_table() -> None:
    faked = uapi_coverage.faked_ioctls()
    assert "IOMMU_IOAS_NOIOMMU_GET_PA" in faked
    assert "VFIO_EEH_PE_OP" not in faked  # no handler: ENOTTY on the fake


def test_lane_records_fold_into_real(tmp_path: Path) -> None:
    lines = [{"test": "t1[real]", "profile": "iommufd-7.3", "linux": "7.3.4",
              "ok": ["IOMMU_DESTROY"], "failed": ["IOMMU_IOAS_NOIOMMU_GET_PA"]},
             {"test": "t2[real]", "profile": "iommufd-7.3", "linux": "7.3.4",
              "ok": ["IOMMU_DESTROY"], "failed": []}]
    (tmp_path / "ioctls.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    real = uapi_coverage.read_lane([tmp_path])["real"]
    assert real["IOMMU_DESTROY"] == {"profiles": ["iommufd-7.3 (7.3.4)"], "tests": 2, "ok": True}
    assert real["IOMMU_IOAS_NOIOMMU_GET_PA"]["ok"] is False
    page = uapi_coverage.render({"real": real, "runs": []})
    assert "iommufd-7.3 (1 tests, errors only)" in page


def test_lane_dir_without_records_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        uapi_coverage.read_lane([tmp_path])


def test_recorder_names_requests_and_features(tmp_path: Path) -> None:
    rec = ioctl_recorder.Recorder(str(tmp_path / "ioctls.jsonl"))
    rec.note(uapi.IOMMU_DESTROY, 0, True)  # outside a test: nothing
    rec.ok = set()
    feat = new("struct vfio_device_feature *",
               flags=C.VFIO_DEVICE_FEATURE_GET | C.VFIO_DEVICE_FEATURE_MIGRATION)
    rec.note(uapi.VFIO_DEVICE_FEATURE, feat, True)
    rec.note(uapi.IOMMU_IOAS_MAP, 0, False)
    assert rec.ok == {"VFIO_DEVICE_FEATURE", "VFIO_DEVICE_FEATURE_MIGRATION"}
    assert rec.failed == {"IOMMU_IOAS_MAP"}


def test_recording_sees_the_inlined_hot_path(tmp_path: Path) -> None:
    """pyvfio._ioctl.call issues LinuxKernel's fcntl path itself; with the recorder configured,
    an ioctl through it reaches the recording wrapper (here: FIONREAD on a pipe, no VFIO)."""
    saved = (LinuxKernel.ioctl, _ioctl.call)

    class Config:  # the two things pytest_configure uses
        stash: ClassVar[dict[object, object]] = {}

        @staticmethod
        def getoption(name: str) -> str:
            return str(tmp_path)

    try:
        ioctl_recorder.pytest_configure(Config)  # type: ignore[arg-type]
        rec = Config.stash[ioctl_recorder._KEY]
        assert isinstance(rec, ioctl_recorder.Recorder)
        rec.ok = set()
        r, w = os.pipe()
        try:
            _ioctl.call(LinuxKernel(), r, termios.FIONREAD, ffi.new("int *"))
        finally:
            os.close(r)
            os.close(w)
        assert rec.ok == {f"{termios.FIONREAD:#x}"}
    finally:
        LinuxKernel.ioctl, _ioctl.call = saved  # type: ignore[method-assign]
