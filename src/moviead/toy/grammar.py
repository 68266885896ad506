"""The text side of the toy data (SPEC §3.3): a small grammar and the timeline of each movie's ADs and subtitles.

Every word list here is our own. An AD is one of two templates over (name, action, object, place)::

    "{Name} {action} the {object} in the {place}."      e.g. "Tamsin polishes the lantern in the attic."
    "In the {place}, {Name} {action} the {object}."     e.g. "In the attic, Tamsin polishes the lantern."

Subtitles are dialogue lines that either address a character by name ("Tamsin, over here!") or name no one.
:func:`parse_toy_sentence` inverts :func:`ad_sentence`, so later stages can score names, actions and objects.
:func:`plan_movie` lays out one movie's characters, ADs and subtitles; :mod:`moviead.toy.generator` renders features
and writes the files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

NAMES: tuple[str, ...] = (
    "Arlo", "Bexley", "Corin", "Dalia", "Emrys", "Fenna", "Garrick", "Halia", "Ivor", "Jessamy",
    "Kellan", "Liesl", "Marek", "Nerys", "Oswin", "Perrin", "Quilla", "Rosalind", "Sabeth", "Tamsin",
    "Ulric", "Vesna", "Wynford", "Ximena", "Yestin", "Zora", "Anselm", "Brielle", "Cassius", "Delphine",
    "Evander", "Florian", "Gideon", "Hester", "Isolde", "Jory", "Kestrel", "Lorcan", "Mirabel", "Niamh",
)  # fmt: skip
"""Pool of invented first names; each toy movie draws 3-4 of them for its characters."""

NUM_SLOTS = 4
"""Appearance slots: a character's look is a concept shared across movies, its name is movie-specific."""

ACTIONS: tuple[str, ...] = (
    "picks up", "puts down", "opens", "inspects", "carries", "drops", "polishes", "hides", "wraps", "repairs",
)  # fmt: skip
OBJECTS: tuple[str, ...] = (
    "lantern", "suitcase", "letter", "bottle", "umbrella", "map", "basket", "clock", "violin", "kettle",
)  # fmt: skip
PLACES: tuple[str, ...] = ("kitchen", "garden", "station", "library", "harbour", "attic")

NAMING_LINES: tuple[str, ...] = (
    "{name}, over here!",
    "Are you coming, {name}?",
    "{name}, wait for me.",
    "Good morning, {name}.",
    "Careful with that, {name}.",
    "{name}! Where have you been?",
    "Thank you, {name}, really.",
    "Is that you, {name}?",
)
"""Dialogue lines that name the character they address."""

PLAIN_LINES: tuple[str, ...] = (
    "I thought we had more time.",
    "Not now, please.",
    "Did you hear that?",
    "It is getting late.",
    "We should go back.",
    "Nobody told me anything.",
    "What is that noise?",
    "Give me a minute.",
    "Well, that settles it.",
    "I will be right there.",
)
"""Dialogue lines that name no one."""

TITLE_WORDS: tuple[tuple[str, ...], tuple[str, ...]] = (
    ("Silver", "Quiet", "Hollow", "Crimson", "Distant", "Paper", "Winter", "Broken"),
    ("Lantern", "Harbour", "Orchard", "Letter", "Bridge", "Meadow", "Signal", "Compass"),
)

TEMPLATES: tuple[str, ...] = (
    "{name} {action} the {object} in the {place}.",
    "In the {place}, {name} {action} the {object}.",
)


@dataclass(frozen=True)
class ToySentence:
    """The content of one toy AD: indices into :data:`ACTIONS`, :data:`OBJECTS`, :data:`PLACES`."""

    name: str
    action: int
    obj: int
    place: int
    template: int = 0


def ad_sentence(
    sentence: ToySentence, templates: tuple[str, ...] = TEMPLATES, objects: tuple[str, ...] = OBJECTS,
    places: tuple[str, ...] = PLACES,
) -> str:
    """The AD text of ``sentence``, with the character's name; its indices point into ``templates``, ``objects`` and
    ``places`` (v1's vocabulary by default; toy world v2 passes its own)."""
    return templates[sentence.template].format(
        name=sentence.name,
        action=ACTIONS[sentence.action],
        object=objects[sentence.obj],
        place=places[sentence.place],
    )


def replace_names(text: str, names: tuple[str, ...] | list[str], word: str = "someone") -> str:
    """Replace every name of ``names`` in ``text`` by ``word``, capitalised at the start of the text.

    ``word="someone"`` gives the MAD-v2 unnamed text, ``word="SOMEONE"`` the LSMDC ``*_someone`` text.
    """
    if not names:
        return text
    pattern = re.compile(r"\b(" + "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True)) + r")\b")

    def _sub(match: re.Match[str]) -> str:
        return word[0].upper() + word[1:] if match.start() == 0 else word

    return pattern.sub(_sub, text)


_ACTION_RE = "|".join(re.escape(a) for a in ACTIONS)
_PARSE = (
    re.compile(rf"^(?P<name>[A-Z][A-Za-z]+) (?P<action>{_ACTION_RE}) the (?P<object>\w+) in the (?P<place>\w+)\.$"),
    re.compile(rf"^In the (?P<place>\w+), (?P<name>[A-Za-z]+) (?P<action>{_ACTION_RE}) the (?P<object>\w+)\.$"),
)


def parse_toy_sentence(text: str) -> ToySentence | None:
    """Invert :func:`ad_sentence`; ``None`` for text outside the grammar (e.g. a model's free output).

    The name is whatever word stands in the name position ("Someone"/"someone"/"SOMEONE" for unnamed text).
    """
    for template, regex in enumerate(_PARSE):
        match = regex.match(text.strip())
        if match and match["object"] in OBJECTS and match["place"] in PLACES:
            return ToySentence(
                name=match["name"],
                action=ACTIONS.index(match["action"]),
                obj=OBJECTS.index(match["object"]),
                place=PLACES.index(match["place"]),
                template=template,
            )
    return None


def movie_title(index: int) -> str:
    """A unique LSMDC-style movie title for movie ``index`` (0-based), words joined by ``_``."""
    adjectives, nouns = TITLE_WORDS
    n = len(adjectives)
    title = f"{adjectives[index % n]}_{nouns[(index // n + index) % n]}"
    return title if index < n * n else f"{title}_{index // (n * n) + 1}"


PLAN_STREAM = 1


def seeded_rng(seed: int, stream: int, movie: int = 0) -> np.random.Generator:
    """An independent generator for (seed, stream, movie); never the global numpy RNG."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, stream, movie])))


@dataclass(frozen=True)
class ToyAD:
    """One planned AD; times in integer milliseconds."""

    start_ms: int
    end_ms: int
    sentence: ToySentence
    slot: int


@dataclass(frozen=True)
class ToySubtitle:
    start_ms: int
    end_ms: int
    text: str


@dataclass
class ToyMovie:
    """One synthetic movie: its ids, characters (name → slot), ADs and subtitles in time order."""

    index: int
    characters: dict[str, int]
    ads: list[ToyAD] = field(default_factory=list)
    subtitles: list[ToySubtitle] = field(default_factory=list)
    duration_ms: int = 0

    @property
    def movie_id(self) -> str:
        return f"toy{self.index + 1:04d}"

    @property
    def imdb_id(self) -> str:
        return f"tt{9000001 + self.index}"

    @property
    def lsmdc_name(self) -> str:
        return f"{self.index + 1:04d}_{movie_title(self.index)}"

    def names(self) -> tuple[str, ...]:
        return tuple(self.characters)


class ToyTimeline:
    """The clock (ms) of a movie being planned: subtitles and ADs laid one after another with random pauses, each
    drawn from the movie's RNG when it is placed (both toy worlds' plans; the first draw is the opening silence)."""

    def __init__(self, rng: np.random.Generator, movie: ToyMovie) -> None:
        self.rng, self.movie = rng, movie
        self.t = int(rng.integers(500, 3000))

    def say(self, text: str) -> None:
        """A subtitle of 1.2-3.2 s, then a 0.2-0.9 s pause."""
        length = int(self.rng.integers(1200, 3200))
        self.movie.subtitles.append(ToySubtitle(self.t, self.t + length, text))
        self.t += length + int(self.rng.integers(200, 900))

    def describe(self, sentence: ToySentence, slot: int) -> None:
        """An AD of 2-6 s showing appearance ``slot``, then a 0.3-1 s pause."""
        length = int(self.rng.integers(2000, 6001))
        self.movie.ads.append(ToyAD(self.t, self.t + length, sentence, slot))
        self.t += length + int(self.rng.integers(300, 1000))

    def finish(self) -> None:
        """The movie ends 1-4 s after the last item."""
        self.movie.duration_ms = self.t + int(self.rng.integers(1000, 4000))


def plan_movie(seed: int, index: int) -> ToyMovie:
    """Characters, ADs and subtitles of movie ``index``; timeline in :mod:`moviead.toy.generator`."""
    rng = seeded_rng(seed, PLAN_STREAM, index)
    n_chars = int(rng.integers(3, 5))
    names = [NAMES[i] for i in rng.choice(len(NAMES), size=n_chars, replace=False)]
    slots = [int(s) for s in rng.choice(NUM_SLOTS, size=n_chars, replace=False)]
    movie = ToyMovie(index=index, characters=dict(zip(names, slots)))
    clock = ToyTimeline(rng, movie)
    say = clock.say

    def line_for(name: str | None) -> str:
        if name is None:
            return PLAIN_LINES[int(rng.integers(len(PLAIN_LINES)))]
        return NAMING_LINES[int(rng.integers(len(NAMING_LINES)))].format(name=name)

    place, scene_left, name = -1, 0, None
    for _ in range(int(rng.integers(30, 51))):
        if scene_left == 0:
            place = int(rng.choice([p for p in range(len(PLACES)) if p != place]))
            scene_left = int(rng.integers(3, 7))
        scene_left -= 1
        if name is None or rng.random() >= 0.5:
            name = names[int(rng.integers(n_chars))]
        lines = int(rng.integers(1, 4))
        named_at = int(rng.integers(lines)) if rng.random() < 0.9 else -1
        for j in range(lines):
            if j == named_at:
                say(line_for(name))
            else:
                others = [n for n in names if n != name]
                say(line_for(others[int(rng.integers(len(others)))] if rng.random() < 0.3 else None))
        sentence = ToySentence(
            name=name,
            action=int(rng.integers(len(ACTIONS))),
            obj=int(rng.integers(len(OBJECTS))),
            place=place,
            template=int(rng.random() < 0.3),
        )
        clock.describe(sentence, movie.characters[name])
    for _ in range(int(rng.integers(1, 3))):
        say(line_for(None))
    clock.finish()
    return movie


def draw_concepts(rng: np.random.Generator, dim: int, sizes: dict[str, int]) -> dict[str, np.ndarray]:
    """Random concepts N(0, I/dim): ``sizes[k]`` vectors (n, D) per kind ``k``, then ``dialogue`` and ``clip_mean``
    (D,), drawn from ``rng`` in that order (both toy worlds)."""
    bank = {k: rng.standard_normal((n, dim), dtype=np.float32) / np.sqrt(dim) for k, n in sizes.items()}
    bank["dialogue"] = rng.standard_normal(dim, dtype=np.float32) / np.sqrt(dim)
    bank["clip_mean"] = rng.standard_normal(dim, dtype=np.float32) / np.sqrt(dim)
    return bank
