import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import nlu_lite
from nlu_lite.cli import main


def test_models_lists_aliases(capsys, isolated_cache):
    assert main(["models", "--task", "sentence"]) == 0
    out = capsys.readouterr().out
    assert "en.embed_sentence.minilm_l6" in out and "en.embed.bert.small_L4_512" not in out


def test_predict_prints_tokens(tiny_bert_dir, capsys, isolated_cache):
    assert main(["predict", str(tiny_bert_dir), "I love NLP", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "love" in out and "NLP" in out


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_predict_writes_files_with_every_row(tiny_bert_dir, tmp_path, capsys, isolated_cache, suffix):
    out = tmp_path / f"out{suffix}"
    assert main(["predict", str(tiny_bert_dir), "the dog runs.", "Paris is big.", "--level", "sentence",
                 "--out", str(out)]) == 0
    df = pd.read_parquet(out) if suffix == ".parquet" else pd.read_csv(out)
    assert df.sentence.tolist() == ["the dog runs.", "Paris is big."]
    column = [c for c in df.columns if c.endswith("_embeddings")][0]
    first = df[column][0]
    vector = np.array(first if suffix == ".parquet" else [float(x) for x in first.split()], dtype=np.float32)
    expected = nlu_lite.to_matrix(nlu_lite.load(path=tiny_bert_dir).predict("the dog runs.", output_level="sentence"))[0]
    np.testing.assert_allclose(vector, expected, atol=1e-6)


def test_predict_reads_stdin_and_files_one_row_per_line(tiny_bert_dir, tmp_path, isolated_cache):
    """A blank line keeps its row (no vector), so origin_index is the line number (issue 23: they were dropped)."""
    texts = tmp_path / "in.txt"
    texts.write_text("first line.\n\nsecond line.\n")
    for args, stdin in ((["--file", str(texts)], None), ([], "first line.\n\nsecond line.\n")):
        out = tmp_path / "o.parquet"
        subprocess.run([sys.executable, "-m", "nlu_lite.cli", "predict", str(tiny_bert_dir), *args,
                        "--level", "document", "--out", str(out)], input=stdin, text=True, check=True,
                       capture_output=True)
        df = pd.read_parquet(out)
        assert df.document.tolist() == ["first line.", "", "second line."] and df.origin_index.tolist() == [0, 1, 2]


def test_texts_may_follow_the_options(tiny_bert_dir, capsys, isolated_cache):
    assert main(["predict", str(tiny_bert_dir), "--level", "sentence", "the dog runs.", "--no-progress",
                 "Paris is big.", "--format", "jsonl"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["sentence"] for r in rows] == ["the dog runs.", "Paris is big."]
    with pytest.raises(SystemExit) as info:  # a stray option is still argparse's error, exit status 2
        main(["predict", str(tiny_bert_dir), "x", "--no-such-flag"])
    assert info.value.code == 2 and "unrecognized arguments: --no-such-flag" in capsys.readouterr().err


def test_stdout_formats_for_pipes_carry_every_row_and_full_vectors(tiny_bert_dir, capsys, isolated_cache):
    texts = [f"text number {i}." for i in range(70)]  # more rows than pandas' printed table shows
    assert main(["predict", str(tiny_bert_dir), *texts, "--level", "document", "--format", "csv"]) == 0
    import io

    df = pd.read_csv(io.StringIO(capsys.readouterr().out))
    column = next(c for c in df.columns if c.endswith("_embeddings"))
    assert len(df) == 70 and df.document.tolist() == texts
    want = nlu_lite.to_matrix(nlu_lite.load(path=tiny_bert_dir).predict(texts, output_level="document"))
    got = np.array([[float(x) for x in cell.split()] for cell in df[column]], np.float32)
    np.testing.assert_array_equal(got, want)  # repr() round-trips float32 exactly
    assert main(["predict", str(tiny_bert_dir), *texts[:3], "--level", "document", "--format", "jsonl"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    np.testing.assert_allclose(np.array([r[column] for r in rows], np.float32), want[:3], rtol=0, atol=0)


def test_a_missing_file_and_version(tiny_bert_dir, tmp_path, capsys, isolated_cache):
    assert main(["predict", str(tiny_bert_dir), "--file", str(tmp_path / "nope.txt")]) == 2
    assert capsys.readouterr().err.startswith(f"nlu-lite: error: --file {tmp_path / 'nope.txt'}: no such file")
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0 and capsys.readouterr().out.strip() == f"nlu-lite {nlu_lite.__version__}"


def test_errors_are_one_line_with_exit_2(capsys, isolated_cache):
    assert main(["predict", "en.embed.nope", "x"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nlu-lite: error: unknown model alias 'en.embed.nope'")


@pytest.mark.parametrize("graph", ["fused", "standard"])
def test_convert_writes_a_model_the_runtime_opens(tiny_bert_dir, tmp_path, graph, capsys):
    from nlu_lite.runtime import OnnxEncoder

    out = tmp_path / "m.onnx"
    assert main(["convert", str(tiny_bert_dir), str(out), "--graph", graph]) == 0
    assert capsys.readouterr().out.split() == [str(out), str(out) + ".data"]
    assert (tmp_path / "m.onnx.data").stat().st_size > out.stat().st_size  # the weights are beside the graph
    encoder = OnnxEncoder.from_path(out)
    assert (encoder.hidden_size, encoder.num_layers) == (32, 2)
    ids = np.array([[2, 10, 11, 3]], dtype=np.int64)
    states = encoder.run(ids, np.ones_like(ids))["last_hidden_state"]
    assert states.shape == (1, 4, 32) and np.isfinite(states).all()


def test_predict_options_use_the_shared_choices_and_fail_before_work(tiny_bert_dir, capsys, isolated_cache):
    assert main(["predict", str(tiny_bert_dir), "the dog runs.", "--level", "token", "--pooling", "cls",
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "pooling='cls' has no meaning at output_level='token'" in err
    with pytest.raises(SystemExit):
        main(["predict", str(tiny_bert_dir), "x", "--subtoken-pooling", "avg"])
    err = capsys.readouterr().err
    assert "invalid choice: 'avg'" in err and "first_last" in err


def test_predict_normalize_flag_gives_unit_vectors(tiny_bert_dir, tmp_path, isolated_cache):
    out = tmp_path / "n.parquet"
    assert main(["predict", str(tiny_bert_dir), "the dog runs.", "--normalize", "--subtoken-pooling", "mean",
                 "--out", str(out), "--no-progress"]) == 0
    back = nlu_lite.read_parquet(out)
    np.testing.assert_allclose(np.linalg.norm(nlu_lite.to_matrix(back), axis=1), 1.0, rtol=1e-5)
