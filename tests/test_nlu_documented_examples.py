"""NLU's documented calls for word and sentence embeddings, run unchanged (issue 14).

Every test runs a call from the model card (../shared/reference/small_bert_L4_512_model_card.md)
or from JohnSnowLabs/nlu's own docs and notebooks (cited above each test: path, heading, and the
commit where the page has changed since) as written, with ``import nlu`` replaced by
``import nlu_lite as nlu``. A model nlu_lite cannot have offline (ELMo, USE, GloVe, sentiment, ...)
is replaced by a small BERT registry entry, named in a comment on the line. The aliases
resolve through the packaged registry as NLU resolves them (``bert`` is small_bert_L2_128,
``embed_sentence.bert`` sent_small_bert_L2_128) and download from a loopback Hub that serves
random-weight checkpoints with the exact shapes of Google's small BERT repos, so the whole
path alias -> download -> ONNX -> frame runs.

Each test asserts the columns and values NLU's docs show where nlu_lite promises the same
(README: "NLU's predict() parameters", "Semantics, and what differs from NLU"). Where NLU's
documented output and nlu_lite's differ, the test asserts NLU's and is marked
``xfail(strict=True)`` with the difference: it turns into a failure the day nlu_lite matches.
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from _hub_server import HubServer
from conftest import build_bert_checkpoint

import nlu_lite as nlu
from nlu_lite.errors import InputError

# Google's small BERT repos behind the aliases used here: (layers, hidden, heads)
SHAPES = {
    "google/bert_uncased_L-2_H-128_A-2": (2, 128, 2),  # bert, embed_sentence.bert
    "google/bert_uncased_L-2_H-256_A-4": (2, 256, 4),
    "google/bert_uncased_L-4_H-128_A-2": (4, 128, 2),
    "google/bert_uncased_L-2_H-512_A-8": (2, 512, 8),
    "google/bert_uncased_L-4_H-512_A-8": (4, 512, 8),  # the model card's
}


def differs(reason: str, raises: type[BaseException] | None = None):
    """NLU's documented output, which nlu_lite does not give yet (reported to nlu_lite's owner)."""
    return pytest.mark.xfail(strict=True, raises=raises, reason=f"differs from NLU's docs: {reason}")


@pytest.fixture(scope="module", autouse=True)
def hub(tmp_path_factory):
    """The repos above on a loopback Hub, and every cache in a folder of this module's own."""
    cache = tmp_path_factory.mktemp("cache")
    # LFS files served in place (the CDN leg is test_artifacts_hub's): huggingface_hub >= 1.x follows a
    # redirect to the same host on HEAD, and the loopback "CDN" is another port of 127.0.0.1
    with pytest.MonkeyPatch.context() as mp, HubServer(lfs_redirect=False, lifetime=900) as server:
        for i, (repo, (layers, hidden, heads)) in enumerate(SHAPES.items()):
            folder = tmp_path_factory.mktemp(repo.split("/")[1])
            server.add_repo(repo, build_bert_checkpoint(folder, hidden=hidden, layers=layers, heads=heads,
                                                        intermediate=4 * hidden, seed=i))
        for name, value in {"NLU_LITE_CACHE": cache / "nlu_lite", "HF_HOME": cache / "hf",
                            "HF_HUB_CACHE": cache / "hf" / "hub", "HF_ENDPOINT": server.endpoint,
                            "NLU_LITE_PROGRESS": "0"}.items():
            mp.setenv(name, str(value))
        for name in ("HF_TOKEN", "NLU_LITE_OFFLINE", "HF_HUB_OFFLINE"):
            mp.delenv(name, raising=False)
        yield server


def vectors(df: pd.DataFrame, column: str) -> np.ndarray:
    return nlu.to_matrix(df, column)


def words(tokens: str) -> list[str]:
    """Tokens as a docs table lists them, one per space."""
    return tokens.split(" ")


# --- the model card ---------------------------------------------------------------------------

# ../shared/reference/small_bert_L4_512_model_card.md, "How to use" (NLU tab) and "Results":
# columns token | en_embed_bert_small_L4_512_embeddings, rows I / love / NLP, 512 dimensions.
def test_model_card_call():
    text = ["I love NLP"]
    embeddings_df = nlu.load('en.embed.bert.small_L4_512').predict(text, output_level='token')  # then shown

    assert embeddings_df.token.tolist() == ["I", "love", "NLP"]
    assert {"token", "en_embed_bert_small_L4_512_embeddings"} <= set(embeddings_df.columns)
    matrix = vectors(embeddings_df, "en_embed_bert_small_L4_512_embeddings")
    assert matrix.shape == (3, 512) and np.isfinite(matrix).all()


# --- word embeddings --------------------------------------------------------------------------

BERT_TEXT = 'NLU offers the latest embeddings in one line '


# JohnSnowLabs/nlu docs/index.md, "Word Embeddings Bert" (docs/en/examples.md has it with nlp.load):
# token | bert_embeddings, one row per word. 'bert' is small_bert_L2_128 in NLU too (its notebooks log
# "small_bert_L2_128 download started"), so 128 dimensions.
def test_bert_word_embeddings_one_row_per_word():
    df = nlu.load('bert').predict('NLU offers the latest embeddings in one line ')
    assert df.token.tolist() == ["NLU", "offers", "the", "latest", "embeddings", "in", "one", "line"]
    column = [c for c in df.columns if c.endswith("_embeddings")]
    assert len(column) == 1 and vectors(df, column[0]).shape == (8, 128)


# The same example's column: NLU names it after the reference requested (docs/en/release_notes.md,
# "NLU Version 1.0.2": "column names for embeddings, based on input nlu reference"); so does the
# model card. nlu_lite names it after the registry's first alias of the model.
def test_bert_word_embeddings_column_is_named_after_the_request():
    df = nlu.load('bert').predict('NLU offers the latest embeddings in one line ')
    assert "bert_embeddings" in df.columns


# JohnSnowLabs/nlu docs/en/release_notes.md, "NLU Version 3.3.0" / "Optional get_embeddings parameter
# for pipelines": "NLU pipelines can now be forced to not return embeddings via get_embeddings".
def test_get_embeddings_false_returns_no_vectors():
    df = nlu.load('bert').predict(BERT_TEXT, get_embeddings=False)
    assert df.token.tolist()[:3] == ["NLU", "offers", "the"]
    assert not [c for c in df.columns if "embed" in c]


# --- sentence embeddings ----------------------------------------------------------------------

# JohnSnowLabs/nlu examples/colab/component_examples/sentence_embeddings/
# NLU_BERT_sentence_embeddings_and_t-SNE_visualization_Example.ipynb, "2. Load Model and embed sample
# sentence with BERT Sentence Embedder"; its output table in docs/index.md, "Bert Sentence Embeddings":
# sentence | bert_sentence_embeddings, one row.
def test_bert_sentence_embeddings_one_row_per_sentence():
    pipe = nlu.load('embed_sentence.bert')
    df = pipe.predict('He was suprised by the diversity of NLU')
    assert df.sentence.tolist() == ["He was suprised by the diversity of NLU"]
    column = [c for c in df.columns if c.endswith("_embeddings")]
    assert len(column) == 1 and vectors(df, column[0]).shape == (1, 128)


# JohnSnowLabs/nlu examples/webinars_conferences_etc/multi_lingual_webinar/0_liners_intro.ipynb, "Bertology
# Embeddings for Sentences and Tokens": nlu.load('embed_sentence.bert') prints embed_sentence_bert_embeddings
# (the request with dots as underscores, as the model card's column).
def test_bert_sentence_embeddings_column_is_named_after_the_request():
    df = nlu.load('embed_sentence.bert').predict("Get me one embedding for this whole sentence")
    assert "embed_sentence_bert_embeddings" in df.columns


TITLES = ["Java: Repeat Task Every Random Seconds", "Why are Java Optionals immutable?",
          "Text Overlay Image with Darkened Opacity React Native", "Why ternary operator in swift is so picky?",
          "hide/show fab with scale animation"]


@pytest.fixture(scope="module")
def df():
    """The first titles of the notebook's 60k Stack Overflow questions (it downloads the CSV)."""
    return pd.DataFrame({"Id": [34552656, 34553034, 34553174, 34553318, 34553755], "Title": TITLES})


# JohnSnowLabs/nlu examples/colab/component_examples/sentence_embeddings/
# sentence_similarirty_stack_overflow_questions.ipynb, "1. Embed Sentences with Bert Sentence Embeddings"
# and "2.1 How to find N most similar sentences": one row per title (document | sentence_embedding_bert
# there, as NLU >= 3 names columns), in the input's order, so row i is df.iloc[i].
def test_sentence_similarity_notebook_embeds_one_row_per_title(df):
    from sklearn.metrics.pairwise import cosine_similarity

    pipe = nlu.load('embed_sentence.bert')
    predictions = pipe.predict(df.Title, output_level='document')
    assert predictions.document.tolist() == TITLES and predictions.origin_index.tolist() == df.index.tolist()

    e_col = pipe.spec.embedding_column  # the notebook: 'sentence_embedding_bert', NLU >= 3's name
    embed_mat = np.array([x for x in predictions[e_col]])
    sim_mat = cosine_similarity(embed_mat, embed_mat)
    assert embed_mat.shape == (5, 128) and np.allclose(np.diag(sim_mat), 1, atol=1e-5)


# The same notebook, "5.1. Multi Embedding Similarity" and "5.2": three sentence embedders in one
# request, one row per title and one column per embedder; predict(string).iloc[0] holds every vector.
def test_several_sentence_embedders_in_one_request(df):
    multi_pipe = nlu.load('en.embed_sentence.small_bert_L2_256 en.embed_sentence.small_bert_L4_128 '
                          'embed_sentence.bert')  # NLU: 'use en.embed_sentence.electra embed_sentence.bert'
    multi_embeddings = multi_pipe.predict(df.Title, output_level='document')
    assert multi_embeddings.document.tolist() == TITLES
    columns = multi_pipe.embedding_columns
    assert [vectors(multi_embeddings, c).shape for c in columns] == [(5, 256), (5, 128), (5, 128)]

    embeddings = multi_pipe.predict('How to get started with Machine Learning and Python').iloc[0]
    assert [np.asarray(embeddings[c]).shape for c in columns] == [(256,), (128,), (128,)]


# --- several models ---------------------------------------------------------------------------

# JohnSnowLabs/nlu README.md, "Loading and predicting with multiple models in 1 line"; its output in
# docs/index.md, "Multiple Token Embeddings at once": one *_embeddings column per model requested (NLU's
# table there has one row per sentence, each word model's cell a list of token vectors; nlu_lite infers
# token level when any model is a word model, README "What you get").
def test_several_word_embedders_in_one_request():
    df = nlu.load('bert en.embed.bert.small_L2_256 en.embed.bert.small_L4_128 en.embed.bert.small_L4_512 '
                  'en.embed.bert.small_L2_512 embed_sentence.bert'  # NLU: 'bert elmo albert xlnet glove use'
                  ).predict('I love NLU! <3')
    columns = [c for c in df.columns if c.endswith("_embeddings")]
    assert [vectors(df, c).shape[1] for c in columns] == [128, 256, 128, 512, 512, 128]
    assert df.token.tolist() == ["I", "love", "NLU", "!", "<", "3"]


# JohnSnowLabs/nlu examples/colab/component_examples/word_embeddings/
# NLU_ELMo_word_embeddings_and_t-SNE_visualization_example.ipynb, "6 Configure ELMO model parameters":
# pipe.print_info() on a request of several components lists the settable parameters of each.
def test_print_info_of_several_models(capsys):
    pipe = nlu.load('bert en.embed.bert.small_L2_256')  # NLU: 'sentiment pos elmo emotion'
    pipe.print_info()
    out = capsys.readouterr().out
    assert out.startswith("The following parameters are configurable for this")
    assert "en.embed.bert.small_L2_128" in out and "en.embed.bert.small_L2_256" in out


# JohnSnowLabs/nlu docs/index.md, "Entity Chunking" (# the outputs of component_list.print_info()):
# "The following parameters are configurable for this NLU pipeline (You can copy paste the examples)".
def test_print_info(capsys):
    pipe = nlu.load('bert')
    pipe.print_info()
    out = capsys.readouterr().out
    assert out.startswith("The following parameters are configurable for this")
    assert "output_level='token'" in out and "positions=" in out and "keep_stranger_features=" in out


# --- discovering models -----------------------------------------------------------------------

# JohnSnowLabs/nlu examples/webinars_conferences_etc/multi_lingual_webinar/0_liners_intro.ipynb,
# "Checkout other Embedding Models": word embedding references only, e.g. en.embed.bert.base_uncased.
def test_print_components_embed(capsys):
    nlu.print_components(action='embed')
    out = capsys.readouterr().out
    assert "en.embed.bert.base_uncased" in out and "en.embed.bert.small_L4_512" in out
    assert not [line for line in out.splitlines()[1:] if "embed_sentence" in line.split()[0]]  # word embeddings only


# The same cell's documented lines include every reference of a model, short forms too:
# "nlu.load('en.embed.bert') returns Spark NLP model bert_base_uncased".
def test_print_components_lists_every_reference(capsys):
    nlu.print_components(action='embed')
    assert re.search(r"(?<![\w.])en\.embed\.bert(?![\w.])", capsys.readouterr().out)


# JohnSnowLabs/nlu examples/colab/component_examples/word_embeddings/
# NLU_BERT_word_embeddings_and_t-SNE_visualization_example.ipynb, "4. NLU has many more bert word
# embeddings!": "For language <en> NLU provides the following Models : ..."
def test_print_all_model_kinds_for_action(capsys):
    nlu.print_all_model_kinds_for_action('embed')
    assert "en.embed.bert.base_uncased" in capsys.readouterr().out


# --- predict()'s parameters and inputs ----------------------------------------------------------

DOCS = ['I love data science! It is so much fun! It can also be quite helpful to people.', 'I love the city New-York']


# JohnSnowLabs/nlu docs/en/predict_api.md @090f0b8 (today's spells nlp.load), "Document output level
# example", "Sentence output level example" and "Token output level example" ('sentiment' -> 'bert').
def test_output_levels():
    document = nlu.load('bert').predict(DOCS, output_level='document')
    assert document.document.tolist() == DOCS
    sentence = nlu.load('bert').predict(DOCS, output_level='sentence')
    assert sentence.sentence.tolist() == ["I love data science!", "It is so much fun!",
                                          "It can also be quite helpful to people.", "I love the city New-York"]
    assert sentence.origin_index.tolist() == [0, 0, 0, 1]  # the docs' id column
    token = nlu.load('bert').predict(DOCS, output_level='token')
    assert token[token.origin_index == 0].token.tolist() == (
        words("I love data science ! It is so much fun ! It can also be quite helpful to people ."))
    # NLU's docs give 'New-York' as one token; nlu_lite gives BERT's words New - York (README: Semantics)


# predict_api.md @090f0b8, "Output positions parameter" ('sentiment' -> 'bert'; the page spells the
# parameter output_positions, which NLU's predict() does not take either: it is positions).
def test_positions_name_the_offsets_as_nlu():
    df = nlu.load('bert').predict('I love data science!', output_level='token', positions=True)
    assert df.token.tolist() == ["I", "love", "data", "science", "!"]
    assert df.token_begin.tolist() == [0, 2, 7, 12, 19] and "token_end" in df.columns and "begin" not in df.columns


# The same table: NLU's ends are inclusive, as Spark NLP's (I 0..0, love 2..5, science 12..18, ! 19..19).
def test_positions_ends_are_inclusive_as_nlu():
    df = nlu.load('bert').predict('I love data science!', output_level='token', positions=True)
    assert df.token_end.tolist() == [0, 5, 10, 18, 19]


# The same table at sentence level (its sentence_begin/sentence_end: [0, 21, 40] / [19, 38, 78]).
def test_sentence_positions_as_nlu():
    df = nlu.load('bert').predict(DOCS, output_level='sentence', positions=True)
    assert df.sentence_begin.tolist() == [0, 21, 40, 0]
    assert df.sentence_end.tolist() == [19, 38, 78, 23]


# The same table: at token level NLU also gives each row its document's and sentences' offsets.
@differs("positions=True at token level gives token_begin/token_end only; NLU's docs also document_begin/"
         "document_end and sentence_begin/sentence_end")
def test_positions_at_token_level_include_sentence_offsets():
    df = nlu.load('bert').predict('I love data science!', output_level='token', positions=True)
    assert {"document_begin", "document_end", "sentence_begin", "sentence_end"} <= set(df.columns)


def test_output_positions_is_refused_by_name():
    with pytest.raises(InputError, match="output_positions"):
        nlu.load('bert').predict('I love data science!', output_level='token', output_positions=True)


# predict_api.md @090f0b8, "Output metadata": metadata=True adds what the model knows about
# each prediction (for word embeddings nlu_lite's token_pieces, token_piece_ids, token_n_pieces,
# token_is_oov; README) and changes no row.
def test_metadata_adds_columns_and_keeps_rows():
    plain = nlu.load('bert').predict('What a wonderful day!')
    df = nlu.load('bert').predict('What a wonderful day!', metadata=True)
    assert df.token.tolist() == plain.token.tolist() == ["What", "a", "wonderful", "day", "!"]
    assert {"token_pieces", "token_piece_ids", "token_n_pieces", "token_is_oov"} <= set(df.columns) - set(plain.columns)


# JohnSnowLabs/nlu nlu/pipe/pipeline.py, Pipeline.predict's docstring: keep_stranger_features "when you
# pass a dataframe with 10 columns and only one of them is named text, the returned dataframe will only
# contain the text column when set to false"; drop_irrelevant_cols "when predicting token level and
# drop_irrelevant_cols = True then chunk, sentence and Doc will be dropped".
def test_keep_stranger_features_and_drop_irrelevant_cols():
    data = pd.DataFrame({"text": ['This day sucks', 'I love this day'], "label": [0, 1], "source": ["a", "b"]})
    kept = nlu.load('bert').predict(data, keep_stranger_features=True, drop_irrelevant_cols=True)
    assert kept.label.tolist() == [0, 0, 0, 1, 1, 1, 1] and kept.source.tolist() == list("aaabbbb")
    assert not {"sentence", "document", "chunk"} & set(kept.columns)
    dropped = nlu.load('bert').predict(data, keep_stranger_features=False)
    assert not {"label", "source"} & set(dropped.columns)
    sentences = nlu.load('bert').predict(data, output_level='sentence', drop_irrelevant_cols=True)
    assert not {"token", "document", "chunk"} & set(sentences.columns)


# predict_api.md @090f0b8, "Supported data types": a string, a list of strings, a DataFrame with a text
# column, its Series ('sentiment' -> 'bert'); one output row per token, origin_index the input row.
@pytest.mark.parametrize("make", [
    lambda: 'This is just one string',
    lambda: ['This is an array', ' Of strings!'],
    lambda: pd.DataFrame({"text": ['This day sucks', 'I love this day', 'I dont like Sami']}),
    lambda: pd.DataFrame({"text": ['This day sucks', 'I love this day', 'I dont like Sami']})['text'],
], ids=["string", "list", "dataframe", "series"])
def test_supported_data_types(make):
    data = make()
    df = nlu.load('bert').predict(data)
    texts = [data] if isinstance(data, str) else list(data["text"] if isinstance(data, pd.DataFrame) else data)
    want = [(i, word) for i, text in enumerate(texts) for word in text.replace("!", " !").split()]
    assert list(zip(df.origin_index, df.token)) == want


# predict_api.md @090f0b8, "Memory optimization recommendations" and "Pandas Dataframe": "One column must
# be named text ... or the first column will be used instead if no column named 'text' exists"
# ('sentiment' -> 'bert'). The word-embedding notebooks do the same: pipe.predict(df[['comment','label']]).
def test_dataframe_without_text_column_uses_the_first():
    data = {
        'tweet': ['@CKL-IT the john snow labs library is awesome!', '@MaziyarPanahi johnsnowlabs library is pretty cool',
                  '@JohnSnowLabs Try out the johnsnowlabs library!'],
        'tweet_location': ['Berlin', 'Paris', 'United States'],
        'tweet_lattitude': ['52.55035', '48.858093', '40.689247'],
        'tweet_longtitude': ['13.39139', '2.294694', '-74.044502']
    }
    text_df = pd.DataFrame(data)
    df = nlu.load('bert').predict(text_df[['tweet', 'tweet_location']])
    assert df[df.origin_index == 2].token.tolist() == words("@ JohnSnowLabs Try out the johnsnowlabs library !")


# JohnSnowLabs/nlu examples/colab/component_examples/word_embeddings/
# NLU_ALBERT_word_embeddings_and_t-SNE_visualization_example.ipynb, "3.1 Visualize Embeddings with
# T-SNE", "3.2" and "4.Prepare data for T-SNE algorithm" (the GloVe and ELECTRA notebooks alike): a text
# column copied from 'comment', rows per token, each from its input row (NLU also keeps 'label' there:
# keep_stranger_features defaults to True in NLU, to keep_columns=False in nlu_lite, README "NLU's
# predict() parameters").
@pytest.mark.filterwarnings("ignore:The inplace keyword", "ignore::PendingDeprecationWarning")  # the notebook's pandas/numpy
def test_word_embedding_notebook_predicts_a_frame_slice():
    df = pd.DataFrame({"comment": ["NC and NH.", "You do know west teams play against west teams more than east teams right?"],
                       "label": [0, 0], "author": ["Trumpbart", "Shbshb906"]})
    pipe = nlu.load('bert')  # NLU: nlu.load('sentiment pos albert emotion')
    df['text'] = df['comment']
    predictions = pipe.predict(df[['text', 'label']].iloc[0:500], output_level='token')
    predictions.dropna(how='any', inplace=True)
    assert predictions.token.tolist()[:4] == ["NC", "and", "NH", "."] and predictions.origin_index.tolist()[4] == 1
    mat = np.matrix([x for x in predictions[pipe.spec.embedding_column]])  # the notebook's T-SNE input
    assert mat.shape == (len(predictions), 128)
