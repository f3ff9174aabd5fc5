"""Reading model files out of zip, tar and wheel archives without trusting their member names.

Every member is checked before anything is written: an absolute name, a ``..`` component, a
link or a device makes the whole archive refused (:class:`UnsafeArchiveError`), even when the
member is not one the model needs. Files are then copied out one by one by our own code
(no ``extractall``), to names we build from the registry's list, hashed on the way.
"""
from __future__ import annotations

import hashlib
import re
import stat
import tarfile
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ..errors import ArtifactNotFoundError, DownloadError, UnsafeArchiveError


@dataclass(frozen=True)
class Member:
    name: str  # normalised: posix, no leading "./"
    is_dir: bool
    size: int


def safe_name(name: str, where: str) -> str:
    """``name`` normalised to a relative posix path, or :class:`UnsafeArchiveError`."""
    norm = name.replace("\\", "/")
    if norm.startswith("/") or re.match(r"^[A-Za-z]:", norm) or "\0" in norm:
        raise UnsafeArchiveError(
            f"{where}: member {name!r} has an absolute path; refusing the whole archive. "
            "Repack the model folder with relative paths."
        )
    parts = [p for p in norm.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchiveError(
            f"{where}: member {name!r} would land outside the target folder; refusing the whole archive. "
            "Repack the model folder without '..' in member names."
        )
    return "/".join(parts)


@contextmanager
def _open(path: Path) -> Iterator[tuple[dict[str, Member], Callable[[str], IO[bytes]]]]:
    """The archive's members (all checked) and a function opening one of them for reading."""
    where = path.name
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            members: dict[str, Member] = {}
            infos: dict[str, zipfile.ZipInfo] = {}
            for info in zf.infolist():
                name = safe_name(info.filename, where)
                kind = stat.S_IFMT(info.external_attr >> 16)  # 0 when the zip records no file type
                if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
                    raise UnsafeArchiveError(
                        f"{where}: member {info.filename!r} is a link or special file; refusing the whole archive."
                    )
                if name:
                    members[name] = Member(name, info.is_dir(), info.file_size)
                    infos[name] = info
            yield members, lambda name: zf.open(infos[name])
        return
    if tarfile.is_tarfile(path):
        with tarfile.open(path, "r:*") as tf:
            members = {}
            tinfos: dict[str, tarfile.TarInfo] = {}
            for info in tf.getmembers():
                name = safe_name(info.name, where)
                if not (info.isfile() or info.isdir()):
                    raise UnsafeArchiveError(
                        f"{where}: member {info.name!r} is a link or special file; refusing the whole archive."
                    )
                if name:
                    members[name] = Member(name, info.isdir(), info.size)
                    tinfos[name] = info

            def opener(name: str) -> IO[bytes]:
                fh = tf.extractfile(tinfos[name])
                assert fh is not None  # regular files always have a stream
                return fh

            yield members, opener
        return
    raise DownloadError(f"{path} is neither a zip nor a tar archive; check the URL or the file it serves.")


def _model_prefix(members: Mapping[str, Member], prefix: str, files: Sequence[str]) -> str:
    """``prefix`` as given; when empty and the files sit in the archive's only top folder, that folder."""
    prefix = prefix.strip("/")
    if prefix or not files or files[0] in members:
        return prefix
    tops = {name.split("/", 1)[0] for name in members}
    if len(tops) == 1:
        (top,) = tops
        if f"{top}/{files[0]}" in members:
            return top
    return prefix


def extract_model_files(
    archive: Path, prefix: str, files: Sequence[str], weights: Sequence[str], dest: Path, what: str
) -> dict[str, str]:
    """Copy ``prefix/<files>`` and the first of ``prefix/<weights>`` found into ``dest``.

    Returns ``{file name: sha256}``. :class:`ArtifactNotFoundError` names what the archive lacks.
    """
    with _open(archive) as (members, open_member):
        prefix = _model_prefix(members, prefix, files)
        # the registry's names are checked like members: they become paths under dest
        inside = (lambda name: f"{prefix}/{name}") if prefix else (lambda name: name)
        wanted = [safe_name(name, what) for name in files]
        missing = [name for name in wanted if inside(name) not in members or members[inside(name)].is_dir]
        chosen = next((safe_name(w, what) for w in weights if inside(safe_name(w, what)) in members), None)
        if weights and chosen is None:
            missing.append("one of " + ", ".join(weights))
        if missing:
            raise ArtifactNotFoundError(
                f"{what}: the archive has no {', '.join(missing)} under {prefix or 'its top level'!r}. "
                "Check the source's 'path' and 'files' in the registry entry."
            )
        if chosen is not None:
            wanted.append(chosen)
        hashes = {}
        for name in wanted:
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            digest = hashlib.sha256()
            with open_member(inside(name)) as src, open(target, "wb") as out:
                while block := src.read(1 << 20):
                    digest.update(block)
                    out.write(block)
            hashes[name] = digest.hexdigest()
        return hashes
