"""Names are checked against their exact format before they reach a path."""

from __future__ import annotations

import pytest

from pyvfio.host import validate


@pytest.mark.parametrize("text,want", [
    ("0000:00:03.0", "0000:00:03.0"), ("00:03.0", "0000:00:03.0"), ("0000:AF:1f.7", "0000:af:1f.7"),
])
def test_bdf_canonical(text: str, want: str) -> None:
    assert validate.bdf(text) == want


@pytest.mark.parametrize("text", ["", "0000:00:03.8", "0000:00:20.0", "../../0000:00:03.0",
                                  "0000:00:03.0/../x", "0000:00:03.0\n", "0000:00:03.0;rm", "x"])
def test_bdf_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="bdf"):
        validate.bdf(text)


def test_driver() -> None:
    assert validate.driver("mlx5_vfio_pci") == "mlx5_vfio_pci"
    for bad in ("", "..", "a/b", "vfio pci", "-x", "x" * 65, "$(id)"):
        with pytest.raises(ValueError, match="driver"):
            validate.driver(bad)


def test_group_and_uuid() -> None:
    assert validate.group("12") == 12
    assert validate.group("noiommu-3") == 3
    assert validate.group(4) == 4
    for bad in ("-1", "1/..", "", "x", True):
        with pytest.raises(ValueError, match="group"):
            validate.group(bad)
    u = "83B8F4F2-509F-382F-3C1E-E6BFE0FA1001"
    assert validate.uuid(u) == u.lower()
    for bad in ("83b8f4f2509f382f3c1ee6bfe0fa1001", "../x", u + "0"):
        with pytest.raises(ValueError, match="uuid"):
            validate.uuid(bad)
    with pytest.raises(ValueError):
        validate.mdev_type("../create")
