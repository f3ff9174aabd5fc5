import pytest

from nlu_lite.sentences import split_sentences


def _split(text):
    spans = split_sentences(text)
    for b, e in spans:  # spans are exact, trimmed slices of the original
        assert text[b:e] == text[b:e].strip() and text[b:e]
    return [text[b:e] for b, e in spans]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("I love NLP", ["I love NLP"]),
        ("Dr. Smith earns 3.5 times more, e.g. in London. He said: \"Fine!\" Then left.",
         ["Dr. Smith earns 3.5 times more, e.g. in London.", 'He said: "Fine!"', "Then left."]),
        ("It costs $3.50 today. Tomorrow it's 4.2% more! Really? Yes.",
         ["It costs $3.50 today.", "Tomorrow it's 4.2% more!", "Really?", "Yes."]),
        ("We met Mr. J. R. Smith at 5 p.m. yesterday. It rained.",
         ["We met Mr. J. R. Smith at 5 p.m. yesterday.", "It rained."]),
        ("Apples, pears, etc. Then we left. The U.S. economy grew.",
         ["Apples, pears, etc.", "Then we left.", "The U.S. economy grew."]),
        ("\"Stop!\" she cried. \"Why?\" he asked.", ['"Stop!" she cried.', '"Why?" he asked.']),
        ("See Fig. 3 for details. Also see No. 5.", ["See Fig. 3 for details.", "Also see No. 5."]),
        ("Wait... what? OK.", ["Wait... what?", "OK."]),
        ("i.e. this stays one sentence, i.e. it does.", ["i.e. this stays one sentence, i.e. it does."]),
        ("First paragraph\n\nsecond paragraph without a stop", ["First paragraph", "second paragraph without a stop"]),
        ("東京は大きい。京都は古い。", ["東京は大きい。", "京都は古い。"]),
        ("The café is naïve. Über alles.", ["The café is naïve.", "Über alles."]),
        ("  padded.   Text here.  ", ["padded.", "Text here."]),
    ],
)
def test_split_sentences(text, expected):
    assert _split(text) == expected


@pytest.mark.parametrize("text", ["", "   ", "\n\n\t"])
def test_blank_text_has_no_sentence(text):
    assert split_sentences(text) == []


def test_no_character_is_lost_between_spans():
    text = "One. Two! Three? Four... Five.\n\nSix 3.14 seven."
    spans = split_sentences(text)
    covered = "".join(text[b:e] for b, e in spans)
    assert covered.replace(" ", "") == text.replace(" ", "").replace("\n", "")


def _best_seconds(*texts: str, rounds: int = 5) -> list[float]:
    """Each text's best time over ``rounds``, the texts interleaved so a busy spell on the machine slows both."""
    import time

    best = [float("inf")] * len(texts)
    for _ in range(rounds):
        for i, text in enumerate(texts):
            started = time.perf_counter()
            split_sentences(text)
            best[i] = min(best[i], time.perf_counter() - started)
    return best


@pytest.mark.parametrize("unit", ["Hello world. ", "Dr. ", ".", "a?!", "x" * 500 + ". ", "\n \t"],
                         ids=["sentences", "abbreviations", "dots", "marks", "long-words", "whitespace"])
def test_splitting_is_linear(unit):
    # the old splitter rescanned the text from 0 at every candidate: 4x the time for 2x the text
    n = 400_000 // len(unit)
    small, large = _best_seconds(unit * n, unit * (2 * n))
    assert large < 3.0 * small + 0.01, (small, large)


def test_a_megabyte_document_splits_into_every_sentence():
    text = "Hello world. " * 80_000
    spans = split_sentences(text)
    assert len(spans) == 80_000 and text[slice(*spans[-1])] == "Hello world."
