"""Word lists and word-level text rules, a leaf module (it imports nothing of moviead): English stopwords, the
content words of a text, and DistinctAD's distinctive words D.

Stopwords are function words that carry no visual content. Used to mask words out of the frame-word matching of the CLIP adaptation (SPEC §4.2) and, in Stage-II, to
keep only content words for the distinctive-word loss (SPEC §5.3).

Source: written for this project (no copied list): the closed-class words of English — articles,
determiners and quantifiers, personal/possessive/reflexive/relative pronouns, auxiliary and modal verbs,
prepositions, conjunctions, common adverbs of degree/time/place and negation — plus the tokenised
contraction pieces a BPE/WordPiece tokenizer emits ("s", "t", "ll", "re", "ve", "d", "m"). Content-bearing
words (verbs of action, nouns, adjectives, numerals) are deliberately absent. All entries are lower case.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

STOPWORDS: frozenset[str] = frozenset(
    """
    a an the this that these those some any each every either neither no none all both few many much more most
    other another such own same several enough
    i me my mine myself we us our ours ourselves you your yours yourself yourselves he him his himself
    she her hers herself it its itself they them their theirs themselves one ones someone something anyone
    anything everyone everything nobody nothing somebody everybody
    who whom whose which what whatever whoever where when why how whether
    am is are was were be been being have has had having do does did doing done
    will would shall should can could may might must ought
    of in on at by for with about against between into through during before after above below to from up
    down out off over under onto upon within without along across behind beyond toward towards around among
    near beside besides via per than like unlike
    and or but nor so yet if then else because as until while since although though unless whereas
    not never only very too also just still even again already ever quite rather almost
    here there now then once always often sometimes soon later
    s t ll re ve d m o y don didn doesn isn aren wasn weren hasn haven hadn won wouldn shouldn couldn
    """.split()
)

_WORD = re.compile(r"[^\W_]+")  # a run of letters and digits (any script): "Margo's" -> "Margo", "s"


def surface_content_words(text: str) -> list[str]:
    """The words of ``text`` as written (case kept) whose lower-case form is not a stopword; in order, repeats kept.

    >>> surface_content_words("In the attic, Tamsin's lantern falls.")
    ['attic', 'Tamsin', 'lantern', 'falls']
    """
    return [word for word in _WORD.findall(text) if word.lower() not in STOPWORDS]


def content_words(text: str) -> list[str]:
    """:func:`surface_content_words` lower-cased: the words that redundancy and repetition compare.

    >>> content_words("In the attic, Tamsin's lantern falls.")
    ['attic', 'tamsin', 'lantern', 'falls']
    """
    return [word.lower() for word in surface_content_words(text)]


def distinctive_words(text: str, context_texts: Iterable[str]) -> list[str]:
    """D of ``text``: its content words whose lower-case form is in no context text; unique, in order of first use.

    >>> distinctive_words("Tamsin opens the map in the attic.", ["In the attic, tamsin drops the clock."])
    ['opens', 'map']
    """
    seen = {word for context in context_texts for word in content_words(context)}
    words: list[str] = []
    for word in surface_content_words(text):
        key = word.lower()
        if key not in seen:
            seen.add(key)
            words.append(word)
    return words
