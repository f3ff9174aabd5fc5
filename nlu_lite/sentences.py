"""A rule-based English sentence splitter that returns character spans into the original text.

The rules, in order:

1. A blank line (two or more line breaks) always ends a sentence.
2. ``.``, ``!``, ``?``, ``…`` (and runs of them such as ``?!`` or ``...``), followed by any
   closing quotes or brackets, end a sentence when whitespace follows and the next word
   starts with an upper-case letter, a digit, or an opening quote/bracket — or when the text
   ends there.
3. A full stop does not end a sentence after a title or other abbreviation that is never
   sentence-final (``Dr.``, ``Mr.``, ``e.g.``, ``i.e.``, ``vs.``, ``Fig.``, ``No.``, month
   abbreviations, ...), after a single capital initial (``J. Smith``), or inside a number
   (``3.14``: no whitespace follows, so rule 2 never fires).
4. ``etc.``, ``Inc.``, ``Ltd.`` and similar may end a sentence: they do when rule 2 holds.
5. CJK full stops (``。！？``) end a sentence with no whitespace needed.

Spans exclude surrounding whitespace; a text of only whitespace has no sentence.
"""
from __future__ import annotations

import re

# never end a sentence: titles and abbreviations that are followed by more of the sentence
_NEVER_FINAL = {
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "rev", "gen", "col", "lt", "sgt", "capt",
    "gov", "sen", "rep", "pres", "hon", "messrs", "mme", "mlle",
    "e.g", "i.e", "cf", "vs", "viz", "approx", "ca", "fig", "figs", "no", "nos", "vol", "vols",
    "pp", "p", "ch", "sec", "eq", "ref", "dept", "univ", "est", "al",
    "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
    "mon", "tue", "tues", "wed", "thu", "thur", "thurs", "fri", "sat", "sun",
    "u.s", "u.k", "u.n", "a.m", "p.m",
}

_BOUNDARY = re.compile(
    # terminal punctuation (tried only where a run of it starts: linear even on "......"), closers,
    # then whitespace or the end
    r"""(?<![.!?…])(?:[.!?…]+["'”’)\]]*)(?=\s|$)"""
    r"""|[。！？]+["'”’」』)\]]*"""  # CJK stops need no whitespace
    r"""|\n\s*\n""",  # blank line
)
_NEXT_STARTS_SENTENCE = re.compile(r"""\s+(?:["'“‘(\[]*[A-Z0-9À-ÖØ-Þ]|["'“‘(\[]|[^\x00-\x7F])""")
_WORD_BEFORE = re.compile(r"""([A-Za-z][A-Za-z.]*)\.$""")


_LOOKBACK = 128  # the word before a full stop is searched this far back: linear time, whatever the text


def _is_boundary(text: str, match: re.Match, text_end: int) -> bool:
    """Whether ``match`` ends a sentence; ``text_end`` is the text's length without trailing space."""
    punct = match.group()
    end = match.end()
    if punct.startswith("\n") or punct[0] in "。！？":
        return True
    if end >= text_end:
        return True
    if not _NEXT_STARTS_SENTENCE.match(text, end):
        return False
    if punct.rstrip("\"'”’)]") != ".":
        return True  # "!", "?", "...", "?!" before a capital
    # an abbreviation or initial is a short run of letters and dots: looking further back only
    # finds longer runs, which are never in _NEVER_FINAL nor single initials
    word = _WORD_BEFORE.search(text, max(0, match.start() - _LOOKBACK), match.start() + 1)
    if word is None:
        return True
    token = word.group(1).lower()
    if token in _NEVER_FINAL:
        return False
    if len(token) == 1 and word.group(1).isupper():
        return False  # an initial: "J. Smith"
    return True


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Character spans ``(begin, end)`` of the sentences of ``text``, in order.

    >>> t = "Dr. Smith earns 3.5 times more, e.g. in London. He said: \\"Fine!\\" Then left."
    >>> [t[b:e] for b, e in split_sentences(t)]
    ['Dr. Smith earns 3.5 times more, e.g. in London.', 'He said: "Fine!"', 'Then left.']
    """
    spans: list[tuple[int, int]] = []
    start = 0
    text_end = len(text.rstrip())
    for match in _BOUNDARY.finditer(text):
        if _is_boundary(text, match, text_end):
            end = match.start() if match.group().startswith("\n") else match.end()
            _append_trimmed(text, start, end, spans)
            start = match.end()
    _append_trimmed(text, start, len(text), spans)
    return spans


def _append_trimmed(text: str, begin: int, end: int, spans: list[tuple[int, int]]) -> None:
    while begin < end and text[begin].isspace():
        begin += 1
    while end > begin and text[end - 1].isspace():
        end -= 1
    if end > begin:
        spans.append((begin, end))
