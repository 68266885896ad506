"""Character-name swapping for training examples (``captioning.name_swap``): every name of a pool that an example's
texts hold is replaced, consistently within the example, by a name drawn at random from the pool.

Why: the papers' decoders are pretrained LLMs that already copy a name from their prompt. A decoder trained from
scratch (the toy recipes' tiny OPT) instead learns which name goes with which clip in the training movies (a
setting, a look), and names the test movies' clips with training-set names. Drawing a fresh name assignment per
example takes that shortcut away: the only way to name the character is to read the name where the example gives
it (its context ADs and subtitles, FocusedAD's instruction). It is a training-time transform only: validation,
test and ``moviead evaluate`` read the texts as they are.

What is swapped in an example: the target AD, its context items (ADs, subtitles), its DSM proposal items (their AD
and subtitle texts; each item's sentence feature stays the one of its original text, so the DSM's features are
those of the data) and, through :attr:`ClipExample.renamed`, FocusedAD's recognised names.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import torch

from moviead.data.collate import ClipExample
from moviead.data.context import ContextItem, ProposalItem

MIN_POOL = 2


def read_name_pool(path: str | Path) -> tuple[str, ...]:
    """The names of a pool file: a text file with one name per line (``#`` comments and blank lines skipped), a JSON
    list of names, or a toy data set's ``toy_manifest.json`` (its ``vocabulary.names``)."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(
            f"captioning.name_swap.names_file {str(file)!r} does not exist: give a text file with one character name "
            "per line (or the toy data's toy_manifest.json), or set captioning.name_swap.enabled=false"
        )
    text = file.read_text(encoding="utf-8")
    if file.suffix == ".json":
        data = json.loads(text)
        names = data["vocabulary"]["names"] if isinstance(data, dict) else data
    else:
        names = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return tuple(str(n) for n in names)


class NameSwap:
    """Draws and applies a random renaming of a name pool.

    Args:
        names: the pool (at least two distinct names; single words or phrases, matched as whole words, case-sensitive).

    A renaming is a random permutation of the pool (a bijection: two characters of one example never get the same
    name), drawn from torch's RNG (seeded per DataLoader worker, as the frames' random shift).
    """

    def __init__(self, names: Sequence[str]) -> None:
        pool = tuple(dict.fromkeys(n.strip() for n in names if n.strip()))
        if len(pool) < MIN_POOL:
            raise ValueError(f"a name pool needs at least {MIN_POOL} distinct names, got {len(pool)}: {pool}")
        self.names = pool
        longest_first = sorted(pool, key=len, reverse=True)  # "Ann Lee" before "Ann"
        self._pattern = re.compile(r"\b(" + "|".join(re.escape(n) for n in longest_first) + r")\b")
        # text -> its pieces around the names (re.split: text, name, text, ...): a data set's texts recur every
        # epoch, so each is searched once (the search was 1.3 ms an example, 7 % of a toy Stage-II step)
        self._pieces: dict[str, tuple[str, ...]] = {}

    def draw(self, generator: torch.Generator | None = None) -> dict[str, str]:
        """A random bijection of the pool onto itself."""
        order = torch.randperm(len(self.names), generator=generator).tolist()
        return {name: self.names[j] for name, j in zip(self.names, order)}

    def apply(self, text: str, renaming: Mapping[str, str]) -> str:
        """``text`` with every pool name replaced through ``renaming`` (all at once: "A and B" → "B and A" works)."""
        pieces = self._pieces.get(text)
        if pieces is None:
            pieces = self._pieces[text] = tuple(self._pattern.split(text))
        if len(pieces) == 1:
            return text
        return "".join(renaming.get(piece, piece) if i % 2 else piece for i, piece in enumerate(pieces))

    def swap_example(self, example: ClipExample, renaming: Mapping[str, str]) -> ClipExample:
        """``example`` with its target, context and proposal texts renamed; :attr:`ClipExample.renamed` records the
        renaming (for names that reach the model another way, e.g. FocusedAD's recognised names)."""

        def item(it: ContextItem) -> ContextItem:
            return replace(it, text=self.apply(it.text, renaming))

        def proposal(it: ProposalItem) -> ProposalItem:
            return replace(it, ad=item(it.ad) if it.ad is not None else None,
                           subtitles=tuple(item(s) for s in it.subtitles),
                           feature_source=it.feature_text)  # the DSM reads the data's own text

        context = example.context
        return replace(
            example,
            record=replace(example.record, text=self.apply(example.record.text, renaming)),
            context=replace(context, ads=tuple(item(a) for a in context.ads),
                            subtitles=tuple(item(s) for s in context.subtitles)),
            proposal=tuple(proposal(p) for p in example.proposal),
            renamed=tuple(sorted(renaming.items())),
        )

    def __call__(self, example: ClipExample, generator: torch.Generator | None = None) -> ClipExample:
        """``example`` under a freshly drawn renaming."""
        return self.swap_example(example, self.draw(generator))
