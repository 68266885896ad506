"""Text side of toy world v2: intercut storylines and shared scenes (premises in :mod:`moviead.toy.world_v2`).

Vocabulary. The names and actions are v1's (:data:`~moviead.toy.grammar.NAMES`, :data:`~moviead.toy.grammar.ACTIONS`);
the places are v1's six plus two, and every place owns four objects of its own (:data:`PLACE_OBJECTS`, v1's ten
objects among them), so an AD's object word tells its setting even when the AD does not name the setting. The
vocabulary is a superset of v1's and the v2 templates a superset of v1's two, so :func:`parse_toy_text` parses the
sentences of both worlds (the toy metrics use it).

Templates. A scene's first AD names the setting (template 0 or 1, as in v1); the others do not (template 2)::

    0  "{Name} {action} the {object} in the {place}."
    1  "In the {place}, {Name} {action} the {object}."
    2  "{Name} {action} the {object}."

Plan of a movie (:func:`plan_movie_v2`): 2 storylines (1 movie in 3) or 3 (2 in 3), each with its own setting, a
**lead** who is the subject of every AD of the storyline and, with
probability 1/2, a **partner** who is only addressed in its dialogue. Settings are dealt in rotation: storyline j
of movie i gets place ``deal[(3 i + j) mod 8]``, ``deal`` a permutation of the 8 places drawn once per seed, so no
two storylines of a movie share a setting and any 6 consecutive movies (the training movies of 10 or more) show
all 8 settings, which a probe or a model must have seen to recognise. Scenes are consecutive runs of ADs of one
storyline; the movie cuts between storylines in a fixed rotation (random initial order): with 3 storylines a run
has 2-3 ADs, with 2 storylines 3-4, so that between two scenes of one storyline there are 3-6 ADs of the others
and a returning storyline's previous AD is 4-7 items back. Each AD is followed by 1-3 lines of its scene's
dialogue; with probability 1/2 one of them addresses a character of that storyline by name, the others name no
one. The only line that names a character of another storyline is the **introduction**: before the first AD of a
storyline's first scene, the last line of the preceding dialogue (or of the movie's opening dialogue) addresses
its lead. Within a scene consecutive ADs differ in action and in object.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from moviead.toy.grammar import (
    ACTIONS,
    NAMES,
    NAMING_LINES,
    NUM_SLOTS,
    PLAIN_LINES,
    ToyMovie,
    ToySentence,
    ToyTimeline,
    ad_sentence,
    seeded_rng,
)

PLACE_OBJECTS: dict[str, tuple[str, ...]] = {
    "kitchen": ("kettle", "bottle", "teapot", "ladle"),
    "garden": ("basket", "spade", "rake", "hose"),
    "station": ("suitcase", "umbrella", "ticket", "timetable"),
    "library": ("letter", "map", "ledger", "atlas"),
    "harbour": ("lantern", "rope", "net", "anchor"),
    "attic": ("clock", "violin", "trunk", "mirror"),
    "workshop": ("hammer", "saw", "chisel", "toolbox"),
    "chapel": ("candle", "bell", "hymnbook", "vase"),
}  # fmt: skip
"""Every place and the objects found only there (v1's six places first, in v1's order)."""

PLACES_V2: tuple[str, ...] = tuple(PLACE_OBJECTS)
OBJECTS_V2: tuple[str, ...] = tuple(o for objects in PLACE_OBJECTS.values() for o in objects)
OBJECTS_PER_PLACE = 4
TEMPLATES_V2: tuple[str, ...] = (
    "{name} {action} the {object} in the {place}.",
    "In the {place}, {name} {action} the {object}.",
    "{name} {action} the {object}.",
)
PLACELESS = 2
"""The template that does not name the setting (ADs after a scene's first)."""

PLAN_STREAM_V2 = 11  # v1 uses streams 0-4
PLACE_DEAL_STREAM = 13


def place_of_object(obj: int) -> int:
    """Index into :data:`PLACES_V2` of the place that owns object ``obj`` (an index into :data:`OBJECTS_V2`)."""
    return obj // OBJECTS_PER_PLACE


def setting_words(place: int) -> frozenset[str]:
    """The words that tie a text to setting ``place``: the place's name and its objects."""
    name = PLACES_V2[place]
    return frozenset((name, *PLACE_OBJECTS[name]))


def ad_sentence_v2(sentence: ToySentence) -> str:
    """The AD text of a v2 ``sentence`` (indices into the v2 vocabulary), with the character's name."""
    return ad_sentence(sentence, TEMPLATES_V2, OBJECTS_V2, PLACES_V2)


def second_sentence_v2(sentence: ToySentence) -> ToySentence:
    """Another describer's sentence for the same clip (LSMDC lists some clips twice): the other template that names
    the setting; a placeless sentence becomes template 1 (naming the setting)."""
    return ToySentence(sentence.name, sentence.action, sentence.obj, sentence.place, 1 - sentence.template % 2)


_ACTION_RE = "|".join(re.escape(a) for a in ACTIONS)
_PARSE_V2 = (
    re.compile(rf"^(?P<name>[A-Z][A-Za-z]+) (?P<action>{_ACTION_RE}) the (?P<object>\w+) in the (?P<place>\w+)\.$"),
    re.compile(rf"^In the (?P<place>\w+), (?P<name>[A-Za-z]+) (?P<action>{_ACTION_RE}) the (?P<object>\w+)\.$"),
    re.compile(rf"^(?P<name>[A-Z][A-Za-z]+) (?P<action>{_ACTION_RE}) the (?P<object>\w+)\.$"),
)


def parse_toy_text(text: str) -> ToySentence | None:
    """Parse a toy AD of either world into a :class:`ToySentence` with **v2** indices; ``None`` outside the grammar.

    v1 sentences parse too (v2's vocabulary and templates contain v1's), so indices of two parses compare
    whatever world each text comes from. The name is the word in the name position ("Someone" for unnamed text).
    A sentence that names no place gets the place that owns its object (in v2 the setting).
    """
    for template, regex in enumerate(_PARSE_V2):
        match = regex.match(text.strip())
        if not match or match["object"] not in OBJECTS_V2:
            continue
        obj = OBJECTS_V2.index(match["object"])
        if template == PLACELESS:
            place = place_of_object(obj)
        elif match["place"] in PLACES_V2:
            place = PLACES_V2.index(match["place"])
        else:
            continue
        return ToySentence(match["name"], ACTIONS.index(match["action"]), obj, place, template)
    return None


@dataclass(frozen=True)
class Storyline:
    """One storyline of a v2 movie: its setting (index into :data:`PLACES_V2`), lead and optional partner."""

    place: int
    lead: str
    partner: str | None = None

    @property
    def characters(self) -> tuple[str, ...]:
        return (self.lead,) if self.partner is None else (self.lead, self.partner)


@dataclass
class StoryMovie(ToyMovie):
    """A v2 movie: a :class:`~moviead.toy.grammar.ToyMovie` plus its storylines and scenes.

    ``ad_scene[i]`` is the scene of AD i; ``scene_storyline[s]`` the storyline of scene s. Scenes are numbered in
    time order and each is a consecutive run of ADs.
    """

    storylines: list[Storyline] = field(default_factory=list)
    ad_scene: list[int] = field(default_factory=list)
    scene_storyline: list[int] = field(default_factory=list)

    def storyline_of(self, ad: int) -> Storyline:
        return self.storylines[self.scene_storyline[self.ad_scene[ad]]]

    def scene_starts(self) -> list[bool]:
        """Whether each AD is the first of its scene."""
        return [i == 0 or self.ad_scene[i] != self.ad_scene[i - 1] for i in range(len(self.ad_scene))]


def _schedule(rng: np.random.Generator, n_storylines: int, n_ads: int) -> tuple[list[int], list[int]]:
    """Scene of each AD and storyline of each scene: a rotation in a random initial order, runs of 2-3 ADs (three
    storylines) or 3-4 (two), the last run cut at ``n_ads``."""
    order = [int(k) for k in rng.permutation(n_storylines)]
    low, high = (2, 3) if n_storylines == 3 else (3, 4)
    ad_scene: list[int] = []
    scene_storyline: list[int] = []
    while len(ad_scene) < n_ads:
        scene = len(scene_storyline)
        scene_storyline.append(order[scene % n_storylines])
        ad_scene += [scene] * int(rng.integers(low, high + 1))
    return ad_scene[:n_ads], scene_storyline


def plan_movie_v2(seed: int, index: int) -> StoryMovie:
    """Storylines, scenes, ADs and subtitles of v2 movie ``index`` (design in the module docstring)."""
    rng = seeded_rng(seed, PLAN_STREAM_V2, index)
    n_storylines = 3 if rng.random() < 2 / 3 else 2
    deal = seeded_rng(seed, PLACE_DEAL_STREAM).permutation(len(PLACES_V2))  # the same for every movie of a seed
    places = [int(deal[(3 * index + j) % len(PLACES_V2)]) for j in range(n_storylines)]
    partners = [bool(rng.random() < 0.5) for _ in range(n_storylines)]
    pool = iter(NAMES[int(i)] for i in rng.choice(len(NAMES), size=n_storylines + sum(partners), replace=False))
    storylines = [Storyline(p, next(pool), next(pool) if has else None) for p, has in zip(places, partners)]
    lead_slots = [int(s) for s in rng.choice(NUM_SLOTS, size=n_storylines, replace=False)]
    characters: dict[str, int] = {}
    for story, slot in zip(storylines, lead_slots):
        characters[story.lead] = slot
        if story.partner is not None:
            characters[story.partner] = int(rng.integers(NUM_SLOTS))
    n_ads = int(rng.integers(30, 51))
    ad_scene, scene_storyline = _schedule(rng, n_storylines, n_ads)
    movie = StoryMovie(index=index, characters=characters, storylines=storylines, ad_scene=ad_scene,
                       scene_storyline=scene_storyline)  # fmt: skip
    clock = ToyTimeline(rng, movie)
    say = clock.say

    def naming(name: str) -> str:
        return NAMING_LINES[int(rng.integers(len(NAMING_LINES)))].format(name=name)

    def plain() -> str:
        return PLAIN_LINES[int(rng.integers(len(PLAIN_LINES)))]

    def introduce(ad: int) -> None:
        """The introduction line before ``ad`` when it opens its storyline's first scene."""
        story = scene_storyline[ad_scene[ad]]
        if scene_storyline.index(story) == ad_scene[ad] and (ad == 0 or ad_scene[ad - 1] != ad_scene[ad]):
            say(naming(storylines[story].lead))

    for _ in range(int(rng.integers(0, 2))):
        say(plain())
    introduce(0)
    starts = movie.scene_starts()
    action, obj = -1, -1
    for i in range(n_ads):
        story = storylines[scene_storyline[ad_scene[i]]]
        if starts[i]:
            action, obj = -1, -1
        action = int(rng.choice([a for a in range(len(ACTIONS)) if a != action]))
        own = range(story.place * OBJECTS_PER_PLACE, (story.place + 1) * OBJECTS_PER_PLACE)
        obj = int(rng.choice([o for o in own if o != obj]))
        template = int(rng.integers(2)) if starts[i] else PLACELESS
        clock.describe(ToySentence(story.lead, action, obj, story.place, template), characters[story.lead])
        lines = int(rng.integers(1, 4))
        named_at = int(rng.integers(lines)) if rng.random() < 0.5 else -1
        for j in range(lines):
            say(naming(story.characters[int(rng.integers(len(story.characters)))]) if j == named_at else plain())
        if i + 1 < n_ads:
            introduce(i + 1)
    clock.finish()
    return movie
