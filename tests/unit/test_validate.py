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


@pytest.mark.parametrize("text,want", [
    ("10000:e0:17.0", "10000:e0:17.0"),  # Intel VMD: a domain of five hex digits
    ("FFFFFFFF:00:00.0", "ffffffff:00:00.0"), ("00000:00:03.0", "0000:00:03.0"),
])
def test_bdf_domain_beyond_four_digits(text: str, want: str) -> None:
    assert validate.bdf(text) == want


@pytest.mark.parametrize("text", ["100000000:00:00.0", "000:00:03.0", "0:00:03.0"])
def test_bdf_domain_out_of_range(text: str) -> None:
    with pytest.raises(ValueError, match="bdf"):
        validate.bdf(text)


def test_is_bdf_is_exactly_the_sysfs_name() -> None:
    assert validate.is_bdf("10000:e0:17.0") and validate.is_bdf("0000:00:03.0")
    assert not validate.is_bdf("00000:00:03.0") and not validate.is_bdf("00:03.0")


def test_long_input_is_not_echoed_in_full() -> None:
    with pytest.raises(ValueError) as info:
        validate.bdf("x" * 5000)
    assert len(str(info.value)) < 200 and "5000 chars" in str(info.value)


@pytest.mark.parametrize("text", ["alice", "1000", "0", "_svc", "build-bot$", "a.b"])
def test_user_accepts(text: str) -> None:
    assert validate.user(text) == text


@pytest.mark.parametrize("text", ["", "١٢", "12\n", "-x", "a/b", "a b", "x" * 40, "$(id)"])
def test_user_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="user"):
        validate.user(text)


@pytest.mark.parametrize("text,want", [("5", 5.0), ("0.2", 0.2), (1e-3, 1e-3), ("604800", 604800.0)])
def test_seconds_accepts(text: str | float, want: float) -> None:
    assert validate.seconds(text) == want


@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "0", "-1", "604801", "1e400", "x", "",
                                  True])
def test_seconds_rejects(text: str | bool) -> None:
    with pytest.raises(ValueError, match="timeout"):
        validate.seconds(text)
