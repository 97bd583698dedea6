"""pyvfio.sysfs: the facts about a device and THE viability rule, one answer for every user."""

from __future__ import annotations

import pytest

import pyvfio
from pyvfio import sysfs
from pyvfio.cdev import cdev_path
from pyvfio.fake import FakeKernel
from pyvfio.group import Group
from pyvfio.host import viability


@pytest.mark.parametrize(("text", "canonical"), [
    ("0000:00:03.0", "0000:00:03.0"),
    ("00:03.0", "0000:00:03.0"),
    ("0000:AB:1f.7", "0000:ab:1f.7"),
    ("10000:e0:17.0", "10000:e0:17.0"),  # Intel VMD domains have five hex digits
])
def test_check_bdf_gives_the_sysfs_name(text: str, canonical: str) -> None:
    assert sysfs.check_bdf(text) == canonical


@pytest.mark.parametrize("text", ["", "0000:00:20.0", "0000:00:03.8", "000:00:03.0",
                                  "0000:00:03", "0000:00:03.0\n",
                                  "\u0660\u0660\u0660\u0660:00:03.0"])
def test_check_bdf_refuses_what_sysfs_never_names(text: str) -> None:
    with pytest.raises(ValueError, match="PCI address"):
        sysfs.check_bdf(text)


@pytest.mark.parametrize(("driver", "ok"), [
    (None, True), ("vfio-pci", True), ("mlx5_vfio_pci", True), ("vfio_pci_foo", True),
    ("pcieport", True), ("pci-stub", True), ("e1000e", False), ("nvme", False),
    ("vfio-pcix", False),
])
def test_the_rule(driver: str | None, ok: bool) -> None:
    assert sysfs.judge(driver)[0] is ok


def test_facts_of_the_standard_host(fake_kernel: FakeKernel) -> None:
    k, edu = fake_kernel, fake_kernel.labels["edu"]
    assert sysfs.iommu_group(k, edu) == k.labels["edu_group"]
    assert sysfs.group_members(k, k.labels["pair_group"])[-2:] == sorted(k.labels["pair"])
    assert sysfs.driver(k, edu) == "vfio-pci" and sysfs.driver(k, k.labels["nic"]) == "e1000e"
    assert sysfs.group_node(k, k.labels["edu_group"]) == f"/dev/vfio/{k.labels['edu_group']}"
    assert sysfs.group_node(k, k.labels["nic_group"]) is None  # no VFIO driver in it
    assert (sysfs.cdev_node(k, edu) or "").startswith("/dev/vfio/devices/vfio")
    assert sysfs.cdev_node(k, k.labels["nic"]) is None


def test_group_host_tooling_and_fake_name_the_same_blockers(
        fake_kernel_nonviable: FakeKernel) -> None:
    k = fake_kernel_nonviable
    number = k.labels["nonviable_group"]
    expected = [(k.labels["nonviable_nic"], "e1000e")]
    assert sysfs.blockers(k, number) == expected
    assert [(m.name, m.driver) for m in viability.diagnose_group(k, number).blockers] == expected
    assert k.bus.blockers(number) == [b for b, _ in expected]
    for group in (k.labels["edu_group"], k.labels["pair_group"], k.labels["nic_group"]):
        fake_says = k.bus.blockers(group)
        assert [b for b, _ in sysfs.blockers(k, group)] == fake_says
        assert [m.name for m in viability.diagnose_group(k, group).blockers] == fake_says
    with Group(k.labels["edu_group"], kernel=k) as g:
        assert g.blockers() == []


@pytest.mark.parametrize("bad", ["0000:00:01", "../../x", "0000:00:01.0/../.."])
def test_library_entry_points_check_the_bdf(fake_kernel: FakeKernel, bad: str) -> None:
    """Issue 15 item 12: open_device, cdev_path and Group.from_device check the BDF first."""
    for call in (lambda: pyvfio.open_device(bad, kernel=fake_kernel),
                 lambda: cdev_path(bad, kernel=fake_kernel),
                 lambda: Group.from_device(bad, kernel=fake_kernel)):
        with pytest.raises(ValueError, match="PCI address"):
            call()
    assert not fake_kernel.calls


def test_the_fake_imports_no_host_tooling() -> None:
    # the fake is below pyvfio.host (issue 11): the facts both need live below both
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    code = ("import sys, pyvfio.fake, pyvfio.fake.hostenv, pyvfio.fake.host; "
            "print(sorted(m for m in sys.modules if m.startswith('pyvfio.host')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_the_fake_disk_head_is_what_the_in_use_check_recognizes() -> None:
    from pyvfio.fake.hostenv import EXT4_HEAD  # noqa: PLC0415
    from pyvfio.host import inuse  # noqa: PLC0415

    assert inuse.signature(EXT4_HEAD) == "ext2/3/4 filesystem"
