"""One VM-lane run: pick the kernel of a profile, write the guest command, boot, collect results.

In-guest test contract (what the tests can rely on):

* cwd is the work directory: the pyvfio checkout for ``tools/vm/run``, the user's own project
  (the current directory) for ``pyvfio vm run`` (read-only, the host's own directory seen
  through 9p);
* environment: ``PYVFIO_KERNEL=real``, ``PYVFIO_VM_PROFILE=<profile>``,
  ``PYVFIO_VM_DEVICES="<BDFs bound to vfio-pci, space separated>"``, ``PYVFIO_VM_RESULTS=<dir>``
  (writable), ``PYTHONDONTWRITEBYTECODE=1``, ``PYTHONUNBUFFERED=1``,
  ``HOME=TMPDIR=/run/tmp`` (tmpfs), ``PYTHONPYCACHEPREFIX`` (bytecode compiled on the host);
* command: ``<python> -m pytest -p no:cacheprovider --junitxml=<results>/junit.xml <args>``.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from pyvfio.vm import drives, initramfs, kernels, profiles, qemu
from pyvfio.vm.profiles import Profile

# tools/vm/run's default pytest arguments (pyvfio's conformance suite); `pyvfio vm run` has none
DEFAULT_PYTEST_ARGS = ["tests/conformance", "-m", "not fake_only"]

# exit statuses of the lane itself (pytest's own are 0..5)
EXIT_TIMEOUT = 124
EXIT_NO_STATUS = 125


PROFILES = profiles.PROFILES


@dataclass(frozen=True)
class Options:
    """What the user adds to a profile on the command line."""

    devices: tuple[str, ...] = ()  # QEMU -device arguments
    drives: tuple[str, ...] = ()  # "ID[:SIZE]" (created in the run dir) or "ID=PATH"
    env: tuple[str, ...] = ()  # "NAME=VALUE" exported in the guest
    modules: tuple[str, ...] = ()  # modprobe'd in the guest before the tests
    bind: tuple[str, ...] = ()  # BDFs bound to vfio-pci (besides the edu devices)
    append: str = ""  # extra kernel command line (module parameters: vfio_pci.enable_sriov=1)


def guest_python(workdir: Path) -> str:
    """The interpreter the guest runs pytest with (the host's own, seen through 9p):
    ``$PYVFIO_VM_PYTHON``, else ``<workdir>/.venv/bin/python``, else the one running this
    (a virtualenv's interpreter stays unresolved, so its site-packages come along)."""
    override = os.environ.get("PYVFIO_VM_PYTHON")
    if override:
        return override
    venv = workdir / ".venv/bin/python"
    if venv.exists():
        return str(venv)
    return sys.executable if sys.prefix != sys.base_prefix else os.path.realpath(sys.executable)


def guest_env(profile: Profile, kernel: kernels.Kernel, results: Path, opts: Options,
              shell: bool, workdir: Path) -> dict[str, str]:
    """The guest command's environment: the lane's contract, then the profile's, then --env."""
    bindir = os.path.dirname(guest_python(workdir))
    env = {
        "PATH": f"{bindir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": "/run/tmp",
        "TMPDIR": "/run/tmp",
        "TERM": os.environ.get("TERM", "dumb") if shell else "dumb",
        "LANG": "C.UTF-8",
        "PYVFIO_KERNEL": "real",
        "PYVFIO_VM_PROFILE": profile.name,
        "PYVFIO_VM_LINUX": profile.linux,
        "PYVFIO_VM_KERNEL": kernel.name,
        "PYVFIO_VM_RESULTS": str(results),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
    }
    prefix = pycache_prefix()
    if prefix is not None:
        env["PYTHONPYCACHEPREFIX"] = str(prefix)
    env.update(profile.env)
    for item in opts.env:
        name, _, value = item.partition("=")
        env[name] = value
    return env


def parse_env(items: list[str]) -> tuple[str, ...]:
    """``NAME=VALUE`` as given, ``NAME`` alone takes the host's value (error if unset)."""
    out = []
    for item in items:
        name, eq, value = item.partition("=")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ValueError(f"--env {item!r}: NAME must be a shell variable name")
        if not eq:
            if name not in os.environ:
                raise ValueError(f"--env {name}: not set on the host (use --env {name}=VALUE)")
            value = os.environ[name]
        out.append(f"{name}={value}")
    return tuple(out)


def _module_lines(kernel: kernels.Kernel, modules: list[str]) -> list[str]:
    """Shell lines loading ``modules`` in the guest (from the kernel's module tree)."""
    q = shlex.quote
    lines = []
    for mod in modules:
        if kernel.modroot is not None:
            load = f"modprobe -d {q(str(kernel.modroot))} -S {q(kernel.release)} {q(mod)}"
        else:  # no module tree: only a built-in module will do
            load = f"[ -d /sys/module/{q(mod.replace('-', '_'))} ]"
        why = f"pyvfio-vm: FATAL: module {mod} cannot be loaded"
        if kernel.modroot is None:
            why += f" (this kernel has no module tree and no built-in {mod})"
        lines.append(f"{load} || {{ echo {q(why)}; exit 125; }}")
    return lines


def guest_script(
    profile: Profile,
    kernel: kernels.Kernel,
    results: Path,
    pytest_args: list[str],
    shell: bool,
    opts: Options | None = None,
    workdir: Path | None = None,
) -> str:
    opts = opts or Options()
    workdir = workdir or Path.cwd()
    python = guest_python(workdir)
    env = guest_env(profile, kernel, results, opts, shell, workdir)
    q = shlex.quote
    pytest = [
        python,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        f"--junitxml={results}/junit.xml",
        *pytest_args,
    ]
    lines = [
        "# generated by tools/vm/run; PYVFIO_VM_DEVICES comes from the guest's init",
        *(f"export {k}={q(v)}" for k, v in env.items()),
        "export PYVFIO_VM_DEVICES",
        *_module_lines(kernel, [*profile.modules, *opts.modules]),
        f"cd {q(str(workdir))} || exit 125",
    ]
    if shell:
        lines += [
            "printf '%s\\n' "
            + q("pyvfio-vm: shell; the test command would be: " + shlex.join(pytest)),
            "[ -x /bin/busybox ] && exec /bin/busybox sh",
            "exec /bin/sh -i",
        ]
    else:
        lines += [
            "printf '%s\\n' " + q("pyvfio-vm: RUN " + shlex.join(pytest)),
            "exec " + shlex.join(pytest),
        ]
    return "\n".join(lines) + "\n"


def pycache_prefix() -> Path | None:
    """Where the host pre-compiles what the guest imports (None if the guest could not see it)."""
    prefix = kernels.vm_cache() / "pycache"
    return None if prefix.is_relative_to("/run") else prefix


def warm_pycache(pytest_args: list[str], workdir: Path) -> None:
    """Compile on the host, once, what the guest's pytest will import (into ``pycache_prefix``).

    The guest may not write bytecode, and under TCG compiling is slow: pytest's assertion
    rewriting of the plugin packages alone (hypothesis: 90 modules) costs ~30 s per guest run.
    A host-side ``pytest --collect-only`` with the same arguments writes those .pyc files (and
    the rewritten ones) to a private prefix, which the guest then reads through 9p.
    """
    prefix = pycache_prefix()
    if prefix is None:
        return
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(PYTHONPYCACHEPREFIX=str(prefix), PYVFIO_VM_WARMUP="1")
    cmd = [
        guest_python(workdir),
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "--collect-only",
        "-q",
        *pytest_args,
    ]
    try:
        subprocess.run(
            cmd,
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=300,
            check=False,  # a failing collection only costs the guest compile time
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        print(
            f"pyvfio vm: note: host-side bytecode warm-up failed ({exc}); "
            "the guest compiles instead"
        )


def kernel_of(profile: Profile) -> kernels.Kernel:
    """The (cached or freshly built) kernel ``profile`` boots."""
    if profile.kernel == "debian":
        return kernels.debian_kernel()
    return kernels.built_kernel(profile.kernel)


def prepare_kernels(chosen: list[Profile]) -> None:
    """Fetch or build, one at a time, every kernel the ``chosen`` profiles boot."""
    for name in dict.fromkeys(p.kernel for p in chosen):
        if name == "debian":
            kernels.debian_kernel()
        else:
            kernels.built_kernel(name)


def bind_word(bdfs: list[str]) -> str:
    for bdf in bdfs:
        if not re.fullmatch(r"[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]", bdf):
            raise ValueError(f"--bind {bdf!r}: not a PCI address like 0000:00:10.0")
    return f"pyvfio.bind={','.join(bdfs)}" if bdfs else ""


@dataclass
class Result:
    profile: str
    status: int
    seconds: float
    phases: str  # host seconds after QEMU start at which the guest was ready / pytest began / done
    message: str


def run_profile(
    profile: Profile,
    results: Path,
    pytest_args: list[str],
    *,
    shell: bool,
    timeout: float,
    keep: bool,
    opts: Options | None = None,
    workdir: Path | None = None,
    prefix: str = "",
) -> Result:
    """Boot ``profile`` once; return the guest command's exit status (or a lane failure)."""
    results.mkdir(parents=True, exist_ok=True)
    if any(c.isspace() for c in str(results)):
        raise SystemExit(f"pyvfio vm: the results directory must not contain whitespace: {results}")
    for stale in ("junit.xml", "exit-status", "console.log"):
        (results / stale).unlink(missing_ok=True)
    opts = opts or Options()
    workdir = workdir or Path.cwd()
    for what, path in (("work directory", workdir), ("python", Path(guest_python(workdir)))):
        if path.is_relative_to("/run"):
            raise SystemExit(
                f"pyvfio vm: the {what} {path} is under /run, which the guest "
                "covers with a tmpfs; use a checkout elsewhere"
            )
    kernel = kernel_of(profile)
    (results / "guest-cmd.sh").write_text(
        guest_script(profile, kernel, results, pytest_args, shell, opts, workdir)
    )
    for old in kernels.vm_cache().glob("run-*"):  # left by a killed run a day ago or more
        if time.time() - old.stat().st_mtime > 86400:
            shutil.rmtree(old, ignore_errors=True)
    work = Path(tempfile.mkdtemp(prefix="run-", dir=kernels.vm_cache()))
    try:
        initrd = initramfs.build(work / "initramfs.cpio.gz", kernel.modroot, kernel.release)
        append = " ".join(
            filter(
                None,
                [
                    # no_timer_check: under TCG on a loaded host the IO-APIC timer check can
                    # miss its ticks and panic ("timer doesn't work through Interrupt-remapped
                    # IO-APIC"); seen once in ~40 boots before this was added
                    "console=ttyS0 panic=-1 loglevel=4 no_timer_check",
                    profile.append,
                    opts.append,
                    bind_word([*profile.bind, *opts.bind]),
                    f"pyvfio.profile={profile.name} pyvfio.mode={'shell' if shell else 'test'}",
                    f"pyvfio.results={results}",
                ],
            )
        )
        cmd = qemu.command(
            kernel.image,
            initrd,
            append,
            results,
            viommu=profile.viommu,
            profile_devices=list(profile.devices),
            extra_devices=list(opts.devices),
            drives=drives.qemu_args(
                [drives.parse(d) for d in (*profile.drives, *opts.drives)], work
            ),
            interactive=shell,
        )
        (work / "qemu-cmdline").write_text(shlex.join(cmd) + "\n")
        qemu.say(f"pyvfio vm: profile {profile.name}: {profile.about}", prefix)
        qemu.say(f"pyvfio vm: kernel {kernel.image}", prefix)
        outcome = qemu.run(cmd, timeout, None if shell else results / "console.log", shell, prefix)
    finally:
        if keep:
            qemu.say(f"pyvfio vm: kept {work} (initramfs, qemu-cmdline)", prefix)
        else:
            shutil.rmtree(work, ignore_errors=True)
    marks = outcome.marks
    boot = ", ".join(
        f"{name} {marks[key]:.1f} s"
        for name, key in (("ready", qemu.READY), ("pytest", qemu.SESSION), ("done", qemu.EXIT))
        if key in marks
    )
    boot = "interactive" if shell else boot or "never ready"
    if outcome.timed_out:
        return Result(
            profile.name,
            EXIT_TIMEOUT,
            outcome.seconds,
            boot,
            f"TIMEOUT: guest still running after {timeout:.0f} s; QEMU killed",
        )
    status_file = results / "exit-status"
    try:
        status = int(status_file.read_text().strip())
    except (OSError, ValueError):
        return Result(
            profile.name,
            EXIT_NO_STATUS,
            outcome.seconds,
            boot,
            f"guest wrote no exit status (QEMU exit {outcome.returncode}); "
            f"see {results / 'console.log'}",
        )
    msg = f"exit status {status}" + (
        "" if shell or (results / "junit.xml").exists() else " (no junit.xml written)"
    )
    return Result(profile.name, status, outcome.seconds, boot, msg)
