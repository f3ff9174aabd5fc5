"""A model folder already on this machine: nothing is copied, nothing is fetched."""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ..errors import ArtifactNotFoundError, RegistryError
from ..registry import LocalSource
from .common import is_complete, missing_files

ENV_HOME = "NLU_LITE_HOME"
DEFAULT_WEIGHTS = ("model.safetensors", "pytorch_model.bin")


def local_path(source: LocalSource) -> Path:
    """``~`` and ``$VARS`` expanded; a relative path is taken from ``$NLU_LITE_HOME`` when set.

    A relative path may not climb out with ``..`` (it would land outside ``NLU_LITE_HOME``):
    that is a :class:`RegistryError`.
    """
    path = Path(os.path.expandvars(source.path)).expanduser()
    if path.is_absolute():
        return path
    if ".." in path.parts:
        raise RegistryError(
            f"local path {source.path!r} climbs out of {ENV_HOME} with '..'; a relative registry path must stay "
            f"inside {ENV_HOME}. Write the folder's absolute path in the registry entry, or move the folder under "
            f"{ENV_HOME} and give its path from there."
        )
    home = os.environ.get(ENV_HOME)
    return Path(home).expanduser() / path if home else path


def check_folder(
    path: str | os.PathLike,
    files: Sequence[str] = ("config.json",),
    weights: Sequence[str] = DEFAULT_WEIGHTS,
) -> Path:
    """``path`` if it holds ``files`` and one of ``weights``, else an error naming what is missing.

    >>> check_folder("/models/my-bert")  # doctest: +SKIP
    PosixPath('/models/my-bert')
    """
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise ArtifactNotFoundError(
            f"model folder {str(folder)!r} does not exist. Pass a folder holding "
            f"{', '.join(files)} and one of {', '.join(weights)} (a Hugging Face checkpoint folder)."
        )
    missing = missing_files(folder, files, weights)
    if missing:
        raise ArtifactNotFoundError(
            f"model folder {str(folder)!r} lacks {', '.join(missing)}. "
            "Copy the missing files into it (they come with the checkpoint: save_pretrained() writes them)."
        )
    return folder


def cached(source: LocalSource) -> Path | None:
    try:
        folder = local_path(source)
    except RegistryError:  # get() raises it, among the sources' failures
        return None
    return folder if is_complete(folder, source.files, source.weights) else None


def get(source: LocalSource, *, progress: bool, refresh: bool, force: bool = False) -> Path:
    return check_folder(local_path(source), source.files, source.weights)
