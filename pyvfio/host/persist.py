"""Bindings and permissions that survive reboot and hot-plug.

Where driverctl is installed, an override is exactly what ``driverctl set-override`` saves: the file
``/etc/driverctl.d/pci-<BDF>`` holding the driver name; driverctl's own udev rule and
``driverctl@.service`` apply it from the moment the device is discovered, so ``driverctl
list-overrides`` and pyvfio see the same bindings.  Elsewhere, a udev rule sets ``driver_override``
when the device is added (numbered before 80-drivers.rules, which loads the native module).
Permissions for an unprivileged user: chown/chmod of the group node now, and a udev rule for later.
All paths live under ``root`` so tests write into a temporary directory.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

from pyvfio.host import discover, validate
from pyvfio.host.hostos import HostOS
from pyvfio.kernel import Kernel

DRIVERCTL_DIR = "etc/driverctl.d"
DRIVERCTL_BIN = ("usr/sbin/driverctl", "sbin/driverctl", "usr/bin/driverctl")
RULES_DIR = "etc/udev/rules.d"
RULE_PREFIX = "70-pyvfio-"
STATE_DIR = "/run/pyvfio/previous-driver"  # tmpfs: a reboot forgets, as it should


@dataclass(frozen=True)
class Override:
    """A persistent binding: device, driver, and the file that holds it."""

    bdf: str
    driver: str
    mechanism: str  # "driverctl" or "udev"
    path: str


def has_driverctl(root: str = "/") -> bool:
    """Tell whether driverctl is installed (its binary or its override directory exists)."""
    return any(os.path.exists(os.path.join(root, p)) for p in (*DRIVERCTL_BIN, DRIVERCTL_DIR))


def udev_rule(bdf: str, driver: str) -> str:
    """Return the udev rule that binds ``bdf`` to ``driver`` when the device appears."""
    bdf, driver = validate.bdf(bdf), validate.driver(driver)
    return (
        "# written by pyvfio bind --persist; remove with pyvfio unbind --persist\n"
        f'ACTION=="add", SUBSYSTEM=="pci", KERNEL=="{bdf}", ATTR{{driver_override}}="{driver}"\n'
    )


class Journal:
    """The files a command wrote, with what each held before: :meth:`rollback` puts them back."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, str | None]] = []

    def record(self, path: str) -> None:
        """Remember ``path``'s content (None: it did not exist) before it is written."""
        try:
            with open(path, encoding="ascii", errors="surrogateescape") as f:
                old: str | None = f.read()
        except FileNotFoundError:
            old = None
        self.entries.append((path, old))

    def rollback(self) -> bool:
        """Put every recorded file back, newest first; return True if all are."""
        ok = True
        for path, old in reversed(self.entries):
            try:
                if old is None:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(path)
                else:
                    _write(path, old)
            except OSError:
                ok = False
        self.entries.clear()
        return ok


def _write(path: str, text: str, journal: Journal | None = None) -> None:
    if journal is not None:
        journal.record(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="ascii", errors="surrogateescape") as f:
        f.write(text)
    os.replace(tmp, path)  # atomic: a crash never leaves half a rule


def save(bdf: str, driver: str = "vfio-pci", root: str = "/", dry_run: bool = False,
         journal: Journal | None = None) -> Override:
    """Make ``bdf`` bind to ``driver`` at every boot and hot-plug; return where it was saved.

    ``journal`` records the file's previous content for a rollback.
    """
    bdf, driver = validate.bdf(bdf), validate.driver(driver)
    if has_driverctl(root):
        ov = Override(bdf, driver, "driverctl", os.path.join(root, DRIVERCTL_DIR, f"pci-{bdf}"))
        text = f"{driver}\n"
    else:
        name = f"{RULE_PREFIX}{bdf.replace(':', '-')}.rules"
        ov = Override(bdf, driver, "udev", os.path.join(root, RULES_DIR, name))
        text = udev_rule(bdf, driver)
    if not dry_run:
        _write(ov.path, text, journal)
    return ov


def overrides(root: str = "/") -> list[Override]:
    """Return every persistent binding, driverctl's and pyvfio's udev rules."""
    out = []
    ddir = os.path.join(root, DRIVERCTL_DIR)
    for name in sorted(os.listdir(ddir)) if os.path.isdir(ddir) else []:
        if name.startswith("pci-") and validate.is_bdf(name[4:]):
            with open(os.path.join(ddir, name), encoding="ascii", errors="replace") as f:
                drv = f.read().strip()
            out.append(Override(name[4:], drv, "driverctl", os.path.join(ddir, name)))
    rdir = os.path.join(root, RULES_DIR)
    for name in sorted(os.listdir(rdir)) if os.path.isdir(rdir) else []:
        bdf = name[len(RULE_PREFIX) : -len(".rules")].replace("-", ":")
        if name.startswith(RULE_PREFIX) and name.endswith(".rules") and validate.is_bdf(bdf):
            with open(os.path.join(rdir, name), encoding="ascii", errors="replace") as f:
                text = f.read()
            drv = text.rsplit('ATTR{driver_override}="', 1)[-1].split('"', 1)[0]
            out.append(Override(bdf, drv, "udev", os.path.join(rdir, name)))
    return out


def remove(bdf: str, root: str = "/", dry_run: bool = False) -> list[Override]:
    """Remove every persistent binding of ``bdf``; return what was (or would be) removed."""
    bdf = validate.bdf(bdf)
    gone = [o for o in overrides(root) if o.bdf == bdf]
    if not dry_run:
        for o in gone:
            os.unlink(o.path)
    return gone


def permission_rule(user: str, bdf: str, group: int | None) -> str:
    """Return a udev rule giving ``user`` the group node and the cdev of ``bdf``."""
    bdf, user = validate.bdf(bdf), validate.user(user)
    lines = ["# written by pyvfio bind --user --persist"]
    if group is not None:
        lines.append(f'SUBSYSTEM=="vfio", KERNEL=="{validate.group(group)}", OWNER="{user}", '
                     'MODE="0660"')
    lines.append(f'SUBSYSTEM=="vfio-dev", KERNELS=="{bdf}", OWNER="{user}", MODE="0660"')
    return "\n".join(lines) + "\n"


def save_permissions(user: str, bdf: str, group: int | None, root: str = "/",
                     dry_run: bool = False, journal: Journal | None = None) -> str:
    """Write :func:`permission_rule` to the rules directory; return its path."""
    name = f"71-pyvfio-user-{validate.bdf(bdf).replace(':', '-')}.rules"
    path = os.path.join(root, RULES_DIR, name)
    rule = permission_rule(user, bdf, group)
    if not dry_run:
        _write(path, rule, journal)
    return path


def grant(kernel: Kernel, host: HostOS, bdf: str, user: str, mode: int = 0o660,
          dry_run: bool = False) -> list[str]:
    """Give ``user`` the group node and cdevs of ``bdf`` now; return the nodes changed.

    Raises:
        KeyError: no such user.
        OSError: chown/chmod refused (EPERM when not root).
    """
    uid, gid = host.user_ids(user)
    group = discover.group_of(kernel, validate.bdf(bdf))
    nodes = [] if group is None else [n for n in (discover.group_node(kernel, group),) if n]
    nodes += [f"/dev/vfio/devices/{n}" for n in discover.cdev_names(kernel, bdf)
              if kernel.exists(f"/dev/vfio/devices/{n}")]
    if not dry_run:
        for node in nodes:
            host.chown(node, uid, gid, mode)
    return nodes


def remember(state_dir: str, bdf: str, driver: str | None) -> None:
    """Record the driver ``bdf`` had before pyvfio bound it (for ``unbind`` to restore)."""
    os.makedirs(state_dir, exist_ok=True)
    with open(os.path.join(state_dir, validate.bdf(bdf)), "w", encoding="ascii") as f:
        f.write(f"{driver or ''}\n")


def recall(state_dir: str, bdf: str) -> str | None:
    """Return the driver remembered for ``bdf`` (None when unknown or it had none)."""
    try:
        with open(os.path.join(state_dir, validate.bdf(bdf)), encoding="ascii") as f:
            name = f.read().strip()
    except OSError:
        return None
    return validate.driver(name) if name else None


def forget(state_dir: str, bdf: str) -> None:
    """Drop the record of ``bdf``'s previous driver."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(state_dir, validate.bdf(bdf)))
