"""Fetching Debian packages without installing them, and reading files out of them.

``apt-get download`` puts a package's ``.deb`` into a cache folder (no root programs run, no
dependencies come along); a cached ``.deb`` is reused. Files are read straight from the package's
data archive (``dpkg-deb --fsys-tarfile``) as a tar stream, so nothing is unpacked to disk and the
megabytes of images in a manual are skipped, not written.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tarfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from nmt.durable import publish, staging_dir
from nmt.errors import NmtError

log = logging.getLogger(__name__)

OWN_FILES_HINT = (
    "You can train on your own files instead: put train.en/train.de, dev.en/dev.de and "
    "test.en/test.de (one sentence per line) in a folder and point data.dir at it."
)


@dataclass(frozen=True)
class Deb:
    """A fetched package: its name, version and cached ``.deb`` file."""

    package: str
    version: str
    path: Path


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/nmt/debs``, or ``~/.cache/nmt/debs``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "nmt" / "debs"


def require_tools() -> None:
    """Fail with a clear message where Debian's package tools are missing."""
    missing = [tool for tool in ("apt-get", "dpkg-deb") if shutil.which(tool) is None]
    if missing:
        raise NmtError(
            f"building this corpus needs Debian's package tools, and {' and '.join(missing)} "
            f"cannot be found (is this a Debian or Ubuntu machine?). {OWN_FILES_HINT}"
        )


def cached_deb(package: str, cache_dir: Path) -> Path | None:
    """The cached ``.deb`` of ``package``, the last by name if several versions are there."""
    found = sorted(cache_dir.glob(f"{package}_*.deb"))
    if len(found) > 1:
        log.warning("several cached versions of %s; using %s", package, found[-1].name)
    return found[-1] if found else None


def download(packages: Iterable[str], cache_dir: Path) -> None:
    """``apt-get download`` the packages into ``cache_dir`` (one call, files moved in whole)."""
    packages = list(packages)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NmtError(f"cannot create the package cache {cache_dir} ({exc.strerror})") from None
    log.info("downloading %s", " ".join(packages))
    with staging_dir(cache_dir / "download") as tmp:
        # As root apt-get drops to the _apt user, which cannot write here; it then warns that the
        # download runs "unsandboxed". Running as the calling user from the start says nothing.
        command = ["apt-get", "-q", "-o", "APT::Sandbox::User=root", "download", *packages]
        if os.geteuid() != 0:
            command = ["apt-get", "-q", "download", *packages]
        try:
            result = subprocess.run(command, cwd=tmp, capture_output=True, text=True, check=False)
        except OSError as exc:
            raise NmtError(f"cannot run apt-get ({exc.strerror}). {OWN_FILES_HINT}") from None
        if result.returncode != 0:
            raise NmtError(_download_failure(packages, result.stderr))
        for deb in sorted(Path(tmp).glob("*.deb")):
            publish(deb, cache_dir / deb.name)


def _download_failure(packages: list[str], stderr: str) -> str:
    errors = [line[3:] for line in stderr.splitlines() if line.startswith("E: ")]
    detail = "; ".join(errors) or stderr.strip() or "no message"
    if any("Unable to locate package" in error for error in errors):
        advice = (
            "The package lists may be missing or stale: run `apt-get update` (as root) and try "
            "again."
        )
    else:
        advice = "Debian's package registry may be unreachable from this machine."
    return f"apt-get could not download {' '.join(packages)}: {detail}. {advice} {OWN_FILES_HINT}"


def deb_version(path: Path) -> str:
    """The ``Version`` field of a ``.deb``."""
    result = subprocess.run(
        ["dpkg-deb", "--field", str(path), "Version"], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise NmtError(f"{path}: not a readable Debian package ({result.stderr.strip()})")
    return result.stdout.strip()


def fetch(packages: Iterable[str], cache_dir: Path) -> dict[str, Deb]:
    """Each package's ``.deb`` in ``cache_dir``, downloading only the ones not cached yet."""
    require_tools()
    packages = sorted(set(packages))
    missing = [package for package in packages if cached_deb(package, cache_dir) is None]
    if missing:
        download(missing, cache_dir)
    debs = {}
    for package in packages:
        path = cached_deb(package, cache_dir)
        if path is None:
            raise NmtError(f"apt-get ran but left no .deb for {package} in {cache_dir}")
        debs[package] = Deb(package, deb_version(path), path)
        log.info("using %s", path.name)
    return debs


def iter_files(deb: Path, wanted: Callable[[str], bool]) -> Iterator[tuple[str, bytes]]:
    """``(path, content)`` of the regular files in a ``.deb`` whose path ``wanted`` accepts.

    Paths come without the leading ``./`` (e.g. ``usr/share/trans/de-en``), in archive order;
    links are skipped. The data archive is streamed once, whatever its compression.
    """
    with subprocess.Popen(
        ["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        problem = None
        try:
            with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
                for member in tar:
                    name = member.name.removeprefix("./")
                    if member.isfile() and wanted(name):
                        content = tar.extractfile(member)
                        assert content is not None
                        yield name, content.read()
            proc.stdout.read()  # the archive's padding, so that dpkg-deb ends without a broken pipe
        except tarfile.TarError as exc:
            problem = str(exc)
        stderr = proc.stderr.read().decode(errors="replace").strip()
        if proc.wait() != 0 or problem is not None:
            raise NmtError(f"{deb}: cannot read the package's files ({stderr or problem})")


def read_files(deb: Path, wanted: Callable[[str], bool]) -> dict[str, bytes]:
    """The files that ``iter_files`` yields, by path."""
    return dict(iter_files(deb, wanted))


def read_html_pages(deb: Deb, root: str) -> dict[str, str]:
    """The package's HTML files under ``root``, decoded, by their path below ``root``: both
    manuals (LibreOffice help, GIMP) pair pages of two languages by that path."""
    files = read_files(deb.path, lambda p: p.startswith(root) and p.endswith(".html"))
    return {path.removeprefix(root): data.decode("utf-8") for path, data in files.items()}
