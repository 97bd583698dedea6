"""The handlers of the ``pyvfio`` subcommands: each returns an :class:`Output` and never prints.

JSON (``--json``): one document per run with ``"schema": "pyvfio.<command>/1"`` and ``"ok"``;
fields are only ever added within a schema version, never renamed or removed.
  ls      devices: [device + viable]; iommu: bool
  group   group, viable, members: [{name, driver, status: ok|blocks, reason}]
  info    device, group (as ``group``), in_use: [{kind, name, detail}], vfio: {flags, num_regions,
          num_irqs, caps, regions, irqs} | null (+ vfio_error)
  bind, unbind  devices, dry_run, previous: {bdf: driver}, steps: [text], nodes: {bdf: [path]},
          missing_nodes, group; bind: persist, granted; unbind: unpersisted
  doctor  ready, checks: [{name, status: ok|info|warn|fail, summary, fix}]
  persist overrides: [{bdf, driver, mechanism: driverctl|udev, path}]
  mdev    types: [...] | mdevs: [...] | uuid | removed;  sriov  bdf, driver, totalvfs, numvfs, vfs,
          vf_token_needed
  error   (schema pyvfio.error/1) error: {type, message, hint, uses?}
A device is {bdf, vendor, device, subsystem_vendor, subsystem_device, class_code (hex strings),
vendor_name, device_name, class_name, driver, driver_override, iommu_group, numa_node,
sriov_totalvfs, sriov_numvfs, physfn, boot_vga, group_node, cdevs}.
"""

from __future__ import annotations

import argparse
import errno
import uuid
from dataclasses import dataclass, field
from typing import Any

from pyvfio.errors import BindError
from pyvfio.host import (
    bind,
    discover,
    doctor,
    inuse,
    mdev,
    persist,
    sriov,
    validate,
    vftoken,
    viability,
)
from pyvfio.host.hostos import HostOS
from pyvfio.kernel import Kernel

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_REFUSED = 0, 1, 2, 3


@dataclass
class Context:
    """Where a command runs: the kernel, the host, and the root of persistent files."""

    kernel: Kernel
    host: HostOS
    root: str = "/"
    state_dir: str = bind.STATE_DIR


@dataclass
class Output:
    """A command's result: the JSON document, its text rendering and the exit code."""

    data: dict[str, Any]
    lines: list[str] = field(default_factory=list)
    code: int = EXIT_OK


def table(headers: list[str], rows: list[list[str]]) -> list[str]:
    """Render rows as a left-aligned text table."""
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return [fmt.format(*headers).rstrip()] + [fmt.format(*map(str, r)).rstrip() for r in rows]


def _name(d: discover.PciDevice) -> str:
    parts = [p for p in (d.vendor_name, d.device_name) if p]
    return " ".join(parts) if parts else f"[{d.vendor:04x}:{d.device:04x}]"


def cmd_ls(ctx: Context, args: argparse.Namespace) -> Output:
    devices = discover.list_devices(ctx.kernel)
    reports = {g: viability.diagnose_group(ctx.kernel, g) for g in
               {d.iommu_group for d in devices if d.iommu_group is not None}}
    data = {"devices": [{**d.to_json(), "viable": None if d.iommu_group is None else
                         reports[d.iommu_group].viable} for d in devices],
            "iommu": bool(reports)}
    rows = [[d.bdf, f"{d.vendor:04x}:{d.device:04x}", d.class_name[:24], _name(d)[:40],
             d.driver or "-", "-" if d.iommu_group is None else str(d.iommu_group),
             "-" if d.iommu_group is None else
             ("yes" if reports[d.iommu_group].viable else "no")] for d in devices]
    lines = table(["BDF", "ID", "CLASS", "NAME", "DRIVER", "GROUP", "VIABLE"], rows)
    if not reports:
        lines.append("no IOMMU groups: the IOMMU is off or absent (run 'pyvfio doctor')")
    return Output(data, lines)


def _group_lines(report: viability.GroupReport) -> list[str]:
    head = f"IOMMU group {report.group}: " + ("viable" if report.viable else "NOT viable")
    rows = [[m.name, m.driver or "-", m.status, m.reason] for m in report.members]
    return [head, *table(["DEVICE", "DRIVER", "STATUS", "WHY"], rows)]


def cmd_group(ctx: Context, args: argparse.Namespace) -> Output:
    group = validate.group(args.group)
    if not ctx.kernel.sysfs_exists(f"kernel/iommu_groups/{group}"):
        try:
            groups = sorted(int(g) for g in ctx.kernel.sysfs_listdir("kernel/iommu_groups")
                            if g.isdigit())
        except OSError:
            groups = []
        why = (f"this host has groups {groups[0]}-{groups[-1]} (see 'pyvfio ls')" if groups else
               "this host has no IOMMU groups: the IOMMU is off or absent (see 'pyvfio doctor')")
        raise FileNotFoundError(errno.ENOENT, f"no IOMMU group {group}: {why}")
    report = viability.diagnose_group(ctx.kernel, group)
    return Output(report.to_json(), _group_lines(report))


def cmd_info(ctx: Context, args: argparse.Namespace) -> Output:
    dev = discover.get(ctx.kernel, discover.require(ctx.kernel, args.bdf))
    report = viability.diagnose_device(ctx.kernel, dev.bdf)
    uses = inuse.check(ctx.kernel, ctx.host, dev.bdf) if dev.driver else []
    data: dict[str, Any] = {"device": dev.to_json(), "group": report and report.to_json(),
                            "in_use": [u.to_json() for u in uses], "vfio": None}
    lines = [f"{dev.bdf}  {_name(dev)}  ({dev.class_name}, {dev.class_code:06x})"]
    for key in ("driver", "driver_override", "iommu_group", "numa_node", "sriov_totalvfs",
                "sriov_numvfs", "physfn", "group_node"):
        value = getattr(dev, key)
        if value is not None:
            lines.append(f"  {key}: {value}")
    lines += [f"  cdev: {c}" for c in dev.cdevs] + [f"  in use: {u}" for u in uses]
    if report:
        lines += ["  " + x for x in _group_lines(report)]
    if dev.driver and viability.is_vfio_driver(ctx.kernel, dev.driver) and dev.group_node:
        from pyvfio.host import vfioinfo  # noqa: PLC0415 - only here do we need the object API

        try:
            data["vfio"] = vfio = vfioinfo.read(ctx.kernel, dev.bdf)
        except Exception as exc:  # the VFIO view is optional in info
            data["vfio_error"] = f"{type(exc).__name__}: {exc}"
            lines.append(f"  vfio: cannot open the device ({exc})")
        else:
            lines.append(f"  vfio: flags {vfio['flags']}, {vfio['num_regions']} regions, "
                         f"{vfio['num_irqs']} irqs")
            lines += [f"    region {r['index']}: size {r['size']:#x} {r['flags']}"
                      for r in vfio["regions"]]
            lines += [f"    irq {q['index']}: count {q['count']} {q['flags']}".rstrip()
                      for q in vfio["irqs"]]
    return Output(data, lines)


def _user_ids(ctx: Context, user: str) -> tuple[int, int]:
    """Check ``--user`` before anything is written: its format, then that it exists."""
    validate.user(user)
    try:
        return ctx.host.user_ids(user)
    except KeyError:
        raise ValueError(f"user {validate.shown(user)} does not exist on this host") from None


def cmd_bind(ctx: Context, args: argparse.Namespace) -> Output:
    if args.user is not None:
        _user_ids(ctx, args.user)  # every argument is checked before the first write
    token = _check_vf_token(ctx, args)  # before anything is bound
    res = bind.bind(ctx.kernel, ctx.host, args.bdf, driver=args.driver, whole_group=args.group,
                    force=args.force, dry_run=args.dry_run, keep_override=args.persist,
                    state_dir=ctx.state_dir, timeout=args.timeout)
    data = res.to_json(ctx.kernel.sysfs_root)
    lines = [("would run: " if res.dry_run else "ran: ") + s.describe(ctx.kernel.sysfs_root)
             for s in res.steps] or [f"{', '.join(res.devices)} already bound to {args.driver}"]
    journal = persist.Journal()
    try:
        lines += _persist_and_grant(ctx, args, res, data, journal)
        if token is not None:  # a failure rolls the bind back too
            lines.append(_set_vf_token(ctx, args.bdf, token, res.dry_run, data))
    except Exception as exc:  # roll back what bind and the files did; the nodes go with the bind
        files = journal.rollback()
        back = bind.undo(ctx.kernel, res, ctx.state_dir) if not res.dry_run else True
        raise BindError(f"{type(exc).__name__} after binding: {exc}", bdf=res.devices[0],
                        rolled_back=back and files) from exc
    lines += [f"{b}: {', '.join(n)}" for b, n in res.nodes.items() if n]
    if res.missing_nodes:
        lines.append("warning: not there yet: " + ", ".join(res.missing_nodes))
    if res.report is not None and not res.report.viable:
        names = ", ".join(f"{m.name} ({m.driver})" for m in res.report.blockers)
        lines.append(f"warning: group {res.report.group} is not viable yet: {names}; "
                     "hint: pyvfio bind --group " + res.devices[0])
    return Output(data, lines)


def _persist_and_grant(ctx: Context, args: argparse.Namespace, res: bind.Result,
                       data: dict[str, Any], journal: persist.Journal) -> list[str]:
    """The writes after the bind: persistent override, node ownership, permission rule."""
    lines: list[str] = []
    if args.persist:
        saved = [persist.save(b, args.driver, ctx.root, res.dry_run, journal)
                 for b in res.devices]
        data["persist"] = [o.path for o in saved]
        lines += [f"persistent ({o.mechanism}): {o.path}" for o in saved]
    if args.user is not None:
        nodes: list[str] = []
        for b in res.devices:
            got = persist.grant(ctx.kernel, ctx.host, b, args.user, dry_run=res.dry_run)
            nodes += [n for n in got if n not in nodes]
        data["granted"] = nodes
        lines += [f"owner {args.user}, mode 0660: {n}" for n in nodes]
        if args.persist:
            rules = [persist.save_permissions(args.user, b, discover.group_of(ctx.kernel, b),
                                              ctx.root, res.dry_run, journal)
                     for b in res.devices]
            data["persist"] += rules
            lines += [f"permission rule: {r}" for r in rules]
    return lines


def _set_vf_token(ctx: Context, bdf: str, token: uuid.UUID, dry_run: bool,
                  data: dict[str, Any]) -> str:
    if not dry_run:
        vftoken.set_token(bdf, token, kernel=ctx.kernel)
    data["vf_token"] = str(token)
    return (f"{'would set' if dry_run else 'set'} VF token {token} on {bdf}; VF users open "
            f"'<VF BDF> vf_token={token}' (group) or bind with it (cdev)")


def _check_vf_token(ctx: Context, args: argparse.Namespace) -> uuid.UUID | None:
    """``bind --vf-token [UUID]``: the token to set on the PF (vfio-pci made one nobody can read).

    Raises:
        ValueError: not vfio-pci, not an SR-IOV PF, ``--group``, or a malformed UUID.
    """
    if args.vf_token is None:
        return None
    if args.driver != "vfio-pci" or args.group:
        raise ValueError("--vf-token needs --driver vfio-pci and one device (not --group)")
    bdf = validate.bdf(args.bdf)
    if not ctx.kernel.sysfs_exists(f"bus/pci/devices/{bdf}/sriov_totalvfs"):
        raise ValueError(f"--vf-token: {bdf} is not an SR-IOV physical function")
    return vftoken.parse(None if args.vf_token == "auto" else args.vf_token)


def cmd_unbind(ctx: Context, args: argparse.Namespace) -> Output:
    res = bind.unbind(ctx.kernel, ctx.host, args.bdf, driver=args.driver, whole_group=args.group,
                      force=args.force, dry_run=args.dry_run, state_dir=ctx.state_dir)
    data = res.to_json(ctx.kernel.sysfs_root)
    lines = [f"{b}: on its host driver {d}, not on VFIO: nothing to unbind"
             for b, d in res.unchanged.items()]
    lines += [("would run: " if res.dry_run else "ran: ") + s.describe(ctx.kernel.sysfs_root)
              for s in res.steps]
    if not lines:
        lines = [f"{args.bdf}: nothing to do"]
    if args.persist:
        bdfs = [*res.devices, *res.unchanged]
        gone = [o for b in bdfs for o in persist.remove(b, ctx.root, res.dry_run)]
        data["unpersisted"] = [o.path for o in gone]
        lines += [f"removed persistent binding: {o.path}" for o in gone]
    if not res.dry_run:
        lines += [f"{b}: now on {discover.driver_of(ctx.kernel, b) or 'no driver'}"
                  for b in res.devices]
    return Output(data, lines)


def cmd_doctor(ctx: Context, args: argparse.Namespace) -> Output:
    checks = doctor.run(ctx.kernel, ctx.host, args.memlock)
    failed = any(c.status == doctor.FAIL for c in checks)
    lines = []
    for c in checks:
        lines.append(f"[{c.status.upper():4}] {c.name}: {c.summary}")
        if c.fix and c.status != doctor.OK:
            lines.append(f"       fix: {c.fix}")
    lines.append("VFIO is NOT ready on this host" if failed else "VFIO is ready on this host")
    return Output({"ready": not failed, "checks": [c.to_json() for c in checks]}, lines,
                  EXIT_FAILED if failed else EXIT_OK)


def cmd_persist(ctx: Context, args: argparse.Namespace) -> Output:
    if args.action == "remove":
        items = persist.remove(args.bdf, ctx.root, args.dry_run)
    else:
        items = persist.overrides(ctx.root)
    data = {"overrides": [vars(o) for o in items]}
    lines = table(["DEVICE", "DRIVER", "MECHANISM", "FILE"],
                  [[o.bdf, o.driver, o.mechanism, o.path] for o in items])
    return Output(data, lines if items else ["no persistent bindings"])


def cmd_mdev(ctx: Context, args: argparse.Namespace) -> Output:
    if args.action == "create":
        u = mdev.create(ctx.kernel, args.parent, args.type, args.uuid)
        return Output({"uuid": u}, [u])
    if args.action == "remove":
        mdev.remove(ctx.kernel, args.uuid)
        return Output({"removed": validate.uuid(args.uuid)}, [f"removed {args.uuid}"])
    if args.action == "list":
        devs = mdev.devices(ctx.kernel)
        return Output({"mdevs": devs}, table(["UUID", "TYPE", "PARENT"], [
            [d["uuid"] or "", d["type"] or "-", d["parent"] or "-"] for d in devs]))
    types = mdev.types(ctx.kernel, args.parent)
    rows = [[t.parent, t.type, t.name or "-", str(t.available), t.device_api or "-"]
            for t in types]
    return Output({"types": [t.to_json() for t in types]},
                  table(["PARENT", "TYPE", "NAME", "AVAILABLE", "API"], rows) if rows
                  else ["no mdev-capable parent devices"])


def cmd_sriov(ctx: Context, args: argparse.Namespace) -> Output:
    if args.action in ("set", "clear"):
        count = args.count if args.action == "set" else 0
        st = sriov.set_numvfs(ctx.kernel, args.bdf, count, ctx.host, force=args.force)
    else:
        st = sriov.state(ctx.kernel, args.bdf)
    lines = [f"{st.bdf}: {st.numvfs}/{st.totalvfs} VFs, PF driver {st.driver or 'none'}"]
    lines += [f"  VF {v}" for v in st.vfs]
    if st.vf_token_needed:
        lines.append("  the PF is on vfio-pci: PF and VF users must share a VF token (UUID)")
    return Output(st.to_json(), lines)
