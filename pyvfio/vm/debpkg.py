"""Download Debian packages of another suite without touching the host's apt state.

The layout check and the VM lane need packages from Debian trixie (kernel headers, kernel images,
the kernel source) on a bookworm host.  They must never be installed: this module keeps a private
apt state directory per suite, takes the mirror from the system's own apt configuration (so no
registry host name lives in the repository), runs ``apt-get download`` into a cache directory and
unpacks with ``dpkg-deb -x``.

Usage as a command::

    python3 tools/debpkg.py SUITE PACKAGE [PACKAGE ...]   # prints the paths of the .deb files
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

APT_SOURCES = Path("/etc/apt/sources.list.d")
APT_SOURCES_LIST = Path("/etc/apt/sources.list")
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"


class DebpkgError(RuntimeError):
    """The package store could not be reached or the package does not exist."""


def cache_root() -> Path:
    """Return the user's cache directory for pyvfio (``$XDG_CACHE_HOME/pyvfio``)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "pyvfio"


def system_mirror() -> str:
    """Return the Debian mirror URI the system's apt configuration uses for the main archive.

    Raises:
        DebpkgError: no Debian main archive is configured.
    """
    uris: list[str] = []
    for path in sorted(APT_SOURCES.glob("*.sources")):
        text = path.read_text()
        for stanza in re.split(r"\n\s*\n", text):
            fields = dict(re.findall(r"^([A-Za-z-]+):\s*(.*)$", stanza, re.M))
            if "deb" in fields.get("Types", "").split() and "main" in fields.get("Components", ""):
                uris += fields.get("URIs", "").split()
    lists = [APT_SOURCES_LIST, *sorted(APT_SOURCES.glob("*.list"))]
    for path in lists:
        if path.exists():
            line = r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+\S+\s+.*\bmain\b"
            uris += re.findall(line, path.read_text(), re.M)
    for uri in uris:
        if "security" not in uri and uri.rstrip("/").endswith("/debian"):
            return uri.rstrip("/")
    raise DebpkgError("no Debian main archive found in the system's apt configuration")


def _apt_options(state: Path) -> list[str]:
    return [
        f"-oDir::State={state}",
        f"-oDir::State::Lists={state}/lists",
        f"-oDir::State::status={state}/status",
        f"-oDir::Cache={state}/cache",
        f"-oDir::Etc::SourceList={state}/sources.list",
        "-oDir::Etc::SourceParts=/dev/null",
        f"-oDir::Etc::Preferences={state}/preferences",
        "-oDir::Etc::PreferencesParts=/dev/null",
        "-oAPT::Get::List-Cleanup=0",
        "-oDebug::NoLocking=1",
        "-oAcquire::Retries=3",
    ]


def apt_state(suites: list[str]) -> Path:
    """Prepare (once) and update a private apt state directory for ``suites``."""
    state = cache_root() / "apt" / "+".join(suites)
    (state / "lists" / "partial").mkdir(parents=True, exist_ok=True)
    (state / "cache" / "archives" / "partial").mkdir(parents=True, exist_ok=True)
    (state / "status").touch()
    mirror = system_mirror()
    lines = [f"deb [signed-by={KEYRING}] {mirror} {suite} main\n" for suite in suites]
    (state / "sources.list").write_text("".join(lines))
    # backports are NotAutomatic (priority 100); pin every version equally so the newest wins
    prefs = [f"Package: *\nPin: release n={suite}\nPin-Priority: 500\n" for suite in suites]
    (state / "preferences").write_text("\n".join(prefs))
    stamp = state / "updated"
    if not stamp.exists() or stamp.read_text() != "".join(lines):
        _run(["apt-get", *_apt_options(state), "update"], state)
        stamp.write_text("".join(lines))
    return state


def _run(cmd: list[str], cwd: Path) -> str:
    try:
        proc = subprocess.run(
            cmd, cwd=cwd, capture_output=True, text=True, timeout=1800, check=False
        )
    except FileNotFoundError as exc:
        raise DebpkgError(f"{cmd[0]} is not installed") from exc
    except subprocess.TimeoutExpired as exc:
        raise DebpkgError(f"{' '.join(cmd[:3])} timed out") from exc
    if proc.returncode != 0 or "Failed to fetch" in proc.stderr:
        raise DebpkgError(f"{' '.join(cmd[-2:])} failed: {proc.stderr.strip()[-800:]}")
    return proc.stdout


def candidate(suites: list[str], package: str) -> str:
    """Return the newest version of ``package`` in ``suites``.

    Raises:
        DebpkgError: the package store is unreachable or has no such package.
    """
    state = apt_state(suites)
    out = _run(["apt-cache", *_apt_options(state), "policy", package], state)
    match = re.search(r"Candidate:\s*(\S+)", out)
    if not match or match.group(1) == "(none)":
        raise DebpkgError(f"{package} is not in {' '.join(suites)}")
    return match.group(1)


def depends(suites: list[str], package: str) -> list[str]:
    """Return the names ``package``'s candidate version depends on (e.g. a metapackage's target).

    Raises:
        DebpkgError: the package store is unreachable or has no such package.
    """
    state = apt_state(suites)
    candidate(suites, package)
    out = _run(["apt-cache", *_apt_options(state), "depends", "--no-recommends", "--no-suggests",
                "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances", package], state)
    return re.findall(r"^\s+\|?Depends:\s*(\S+)", out, re.M)


def download(suites: list[str], package: str, version: str | None = None) -> Path:
    """Download ``package`` (its candidate unless ``version``) into the cache; return the .deb.

    A .deb already in the cache is reused without any network access.

    Raises:
        DebpkgError: the package store is unreachable or has no such package.
    """
    dest = cache_root() / "debs"
    dest.mkdir(parents=True, exist_ok=True)
    if version is not None:
        found = sorted(dest.glob(f"{package}_{_quote(version)}_*.deb"))
        if found:
            return found[0]
    state = apt_state(suites)
    version = version or candidate(suites, package)
    found = sorted(dest.glob(f"{package}_{_quote(version)}_*.deb"))
    if found:
        return found[0]
    _run(["apt-get", *_apt_options(state), "download", f"{package}={version}"], dest)
    found = sorted(dest.glob(f"{package}_{_quote(version)}_*.deb"))
    if not found:
        raise DebpkgError(f"apt-get download {package}={version} left no .deb in {dest}")
    return found[0]


def _quote(version: str) -> str:
    # apt-get download names files with ':' in epochs escaped as '%3a'
    return version.replace(":", "%3a")


def extract(deb: Path, dest: Path) -> Path:
    """Unpack ``deb`` into ``dest`` with ``dpkg-deb -x`` (once; a stamp file marks completion)."""
    stamp = dest / f".extracted-{deb.name}"
    if not stamp.exists():
        dest.mkdir(parents=True, exist_ok=True)
        _run(["dpkg-deb", "-x", str(deb), str(dest)], dest)
        stamp.touch()
    return dest


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        for package in argv[1:]:
            print(download([argv[0]], package))
    except DebpkgError as exc:
        print(f"debpkg: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
