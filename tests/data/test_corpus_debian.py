"""Fetching packages with apt-get (a fake one on PATH) and reading files out of real .debs."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from nmt.data.corpus import debian
from nmt.errors import NmtError

needs_dpkg = pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")


def build_deb(
    where: Path,
    package: str,
    version: str,
    files: dict[str, bytes],
    links: dict[str, str] | None = None,
) -> Path:
    """A real .deb holding ``files`` and symbolic ``links`` (paths relative to the root)."""
    root = where / f"root-{package}"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        f"Package: {package}\nVersion: {version}\nArchitecture: all\n"
        "Maintainer: Test <test@example.org>\nDescription: test package\n"
    )
    for path, data in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(data)
    for path, target in (links or {}).items():
        (root / path).symlink_to(target)
    deb = where / f"{package}_{version.replace(':', '%3a')}_all.deb"
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "--build", str(root), str(deb)],
        check=True,
        capture_output=True,
    )
    return deb


def fake_apt_get(bin_dir: Path, script: str) -> Path:
    """An ``apt-get`` on PATH that runs ``script`` (sh) and logs its arguments to ``calls``."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    log = bin_dir / "calls"
    (bin_dir / "apt-get").write_text(f'#!/bin/sh\necho "$@" >> {log}\n{script}\n')
    (bin_dir / "apt-get").chmod(0o755)
    return log


@pytest.fixture
def fake_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """PATH is a folder for a fake apt-get, then the folders of sh and the real dpkg-deb."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    keep = {str(Path(shutil.which(tool) or "/bin/sh").parent) for tool in ("sh", "dpkg-deb")}
    monkeypatch.setenv("PATH", os.pathsep.join([str(bin_dir), *sorted(keep)]))
    return bin_dir


def test_missing_apt_get_says_so_and_offers_own_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(debian.shutil, "which", lambda tool: None if tool == "apt-get" else tool)
    with pytest.raises(NmtError) as error:
        debian.fetch(["trans-de-en"], tmp_path)
    message = str(error.value)
    assert "apt-get" in message and "cannot be found" in message
    assert "train.en" in message and "data.dir" in message


def test_unknown_package_suggests_apt_get_update(tmp_path: Path, fake_path: Path) -> None:
    fake_apt_get(fake_path, 'echo "E: Unable to locate package no-such-pkg" >&2; exit 100')
    with pytest.raises(NmtError) as error:
        debian.fetch(["no-such-pkg"], tmp_path / "cache")
    message = str(error.value)
    assert "no-such-pkg" in message and "apt-get update" in message and "train.en" in message


def test_unreachable_registry_says_so(tmp_path: Path, fake_path: Path) -> None:
    fake_apt_get(
        fake_path, 'echo "E: Failed to fetch http://x/y.deb  Could not resolve" >&2; exit 100'
    )
    with pytest.raises(NmtError) as error:
        debian.fetch(["trans-de-en"], tmp_path / "cache")
    message = str(error.value)
    assert "unreachable" in message and "Could not resolve" in message
    assert "apt-get update" not in message and "data.dir" in message
    assert not list((tmp_path / "cache").iterdir())  # no partial download left behind


@needs_dpkg
def test_downloads_once_then_reuses_the_cache(tmp_path: Path, fake_path: Path) -> None:
    built = build_deb(tmp_path, "demo", "2:1.5-3", {"usr/share/demo/a.txt": b"hello\n"})
    calls = fake_apt_get(fake_path, f'cp "{built}" .')
    cache = tmp_path / "cache"

    first = debian.fetch(["demo"], cache)
    second = debian.fetch(["demo"], cache)

    assert first == second
    assert first["demo"].version == "2:1.5-3"
    assert first["demo"].path == cache / built.name
    assert calls.read_text().count("download") == 1
    assert "demo" in calls.read_text()
    if os.geteuid() == 0:  # the option that keeps apt-get from warning "unsandboxed"
        assert "APT::Sandbox::User=root" in calls.read_text()
    assert sorted(p.name for p in cache.iterdir()) == [built.name]  # no temporary folder left


@needs_dpkg
def test_iter_files_reads_only_the_wanted_regular_files(tmp_path: Path) -> None:
    files = {
        "usr/share/doc/a.html": b"<p>a</p>",
        "usr/share/doc/b.txt": b"b",
        "usr/share/doc/sub/c.html": b"<p>c</p>",
    }
    deb = build_deb(tmp_path, "demo", "1.0", files, {"usr/share/doc/link.html": "a.html"})

    found = list(debian.iter_files(deb, lambda path: path.endswith(".html")))

    assert sorted(found) == [
        ("usr/share/doc/a.html", b"<p>a</p>"),
        ("usr/share/doc/sub/c.html", b"<p>c</p>"),
    ]


@needs_dpkg
def test_a_broken_deb_is_an_nmt_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken_1.0_all.deb"
    broken.write_bytes(b"not a debian package")
    with pytest.raises(NmtError, match=r"broken_1\.0_all\.deb"):
        debian.read_files(broken, lambda path: True)


def test_default_cache_dir_follows_xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert debian.default_cache_dir() == tmp_path / "nmt" / "debs"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert debian.default_cache_dir() == tmp_path / "home" / ".cache" / "nmt" / "debs"
