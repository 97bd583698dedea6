"""The VF token rule of VFIO_GROUP_GET_DEVICE_FD (vfio_pci_core.c:vfio_pci_validate_vf_token).

Unit tests of the fake's model (pyvfio.fake.vf_token) called directly, without opening devices:
the same rules through real opens run on Linux 7.3 and the fake in tests/conformance/test_sriov.py;
the name parsing it rests on is in tests/conformance/test_bad_input.py.
"""

from __future__ import annotations

import errno

import pytest

from pyvfio.fake import FakeKernel, standard_host
from pyvfio.fake.hostenv import add_sriov
from pyvfio.fake.vf_token import NIL, match
from tests.helpers import expect_errno

PF = "0000:00:01.0"  # the lone edu, bound to vfio-pci, made an SR-IOV PF
NIC = "0000:00:02.0"  # on e1000e: neither PF nor VF
TOKEN = "0a1b2c3d-0000-4000-8000-00000000abcd"


@pytest.fixture
def kernel() -> FakeKernel:
    k = standard_host(iommufd=True)
    add_sriov(k, PF, 2)
    k.sysfs_write("module/vfio_pci/parameters/enable_sriov", "1")
    k.sysfs_write(f"bus/pci/devices/{PF}/sriov_numvfs", "1")
    return k


def _vf(k: FakeKernel) -> str:
    return k.sysfs_readlink(f"bus/pci/devices/{PF}/virtfn0").rsplit("/", 1)[-1]


def test_vf_without_token_eacces(kernel: FakeKernel) -> None:
    expect_errno(errno.EACCES, kernel.nodes.vf_tokens.validate, _vf(kernel), None)


def test_vf_with_the_pfs_token_ok(kernel: FakeKernel) -> None:
    """A fresh PF's token is random (vfio_pci_vf_init: uuid_gen), not the nil UUID."""
    tokens = kernel.nodes.vf_tokens
    expect_errno(errno.EACCES, tokens.validate, _vf(kernel), NIL)
    tokens.validate(_vf(kernel), tokens.token(PF))


def test_rebinding_the_pf_makes_a_new_token(kernel: FakeKernel) -> None:
    tokens = kernel.nodes.vf_tokens
    before = tokens.token(PF)
    kernel.sysfs_write(f"bus/pci/devices/{PF}/sriov_numvfs", "0")
    kernel.sysfs_write("bus/pci/drivers/vfio-pci/unbind", PF)
    kernel.sysfs_write("bus/pci/drivers/vfio-pci/bind", PF)
    assert tokens.token(PF) != before


def test_vf_with_another_token_eacces(kernel: FakeKernel) -> None:
    expect_errno(errno.EACCES, kernel.nodes.vf_tokens.validate, _vf(kernel), TOKEN)


def test_pf_open_with_token_sets_it_for_its_vfs(kernel: FakeKernel) -> None:
    tokens = kernel.nodes.vf_tokens
    tokens.validate(PF, TOKEN)
    tokens.validate(_vf(kernel), TOKEN)
    expect_errno(errno.EACCES, tokens.validate, _vf(kernel), NIL)


def test_pf_with_a_vf_open_needs_the_token(kernel: FakeKernel) -> None:
    tokens = kernel.nodes.vf_tokens
    kernel.open_devices[_vf(kernel)] = None  # type: ignore[assignment]  # a VF fd is open
    try:
        expect_errno(errno.EACCES, tokens.validate, PF, None)
        expect_errno(errno.EACCES, tokens.validate, PF, TOKEN)
        tokens.validate(PF, tokens.token(PF))
    finally:
        del kernel.open_devices[_vf(kernel)]
    tokens.validate(PF, None)  # no VF open: no token needed


def test_vf_of_a_pf_not_on_vfio_pci_refuses_a_token(kernel: FakeKernel) -> None:
    kernel.bus.driver_of[PF] = "e1000e"
    tokens = kernel.nodes.vf_tokens
    expect_errno(errno.EINVAL, tokens.validate, _vf(kernel), NIL)
    tokens.validate(_vf(kernel), None)


def test_neither_pf_nor_vf_refuses_a_token(kernel: FakeKernel) -> None:
    expect_errno(errno.EINVAL, kernel.nodes.vf_tokens.validate, NIC, TOKEN)
    kernel.nodes.vf_tokens.validate(NIC, None)


@pytest.mark.parametrize(("text", "want"), [
    (PF, (True, None)),
    (PF + "   ", (True, None)),
    (f"{PF} vf_token={TOKEN}", (True, TOKEN)),
    (f"{PF}  vf_token={TOKEN.upper()}  ", (True, TOKEN)),
    (PF + "1", (False, None)),
    ("0000:00:01", (False, None)),
])
def test_match_names(text: str, want: tuple[bool, str | None]) -> None:
    assert match(PF, text) == want


@pytest.mark.parametrize("text", [f"{PF} vf_token={TOKEN} vf_token={TOKEN}", f"{PF} x=1",
                                  f"{PF} vf_token={TOKEN[:-1]}", f"{PF} vf_token={TOKEN}x",
                                  f"{PF} vf_token=" + "g" * 36])
def test_match_bad_options_einval(text: str) -> None:
    expect_errno(errno.EINVAL, match, PF, text)
