"""Where a :func:`~moviead.evaluation.decode.decode_split` run spends its time: wall and CPU timers patched around
its stages (``bench/recurrent_eval.py --profile``).

Timers are inclusive (a stage's time holds its sub-stages', listed indented below it); a stage entered again while
it runs (recursion) is counted once. The LM's forward calls are split into the prefill (the first call of a
``generate``, the whole prompt) and the decoding steps (one new token per sequence).
"""

from __future__ import annotations

import functools
import importlib
import time
from collections.abc import Callable
from typing import Any

# (label, "module:attribute[.method]", depth): the stages, in the order of the report
STAGES: tuple[tuple[str, str, int], ...] = (
    ("dataset set-up", "moviead.evaluation.decode:make_dataset", 0),
    ("pre-encode proposal texts", "moviead.evaluation.decode:encode_proposal_texts", 0),
    ("examples (frames, context, proposal)", "moviead.data.datasets:ADClipDataset.__getitem__", 0),
    ("frames read", "moviead.data.datasets:ADClipDataset.frames", 1),
    ("proposal building", "moviead.data.context:ContextBuilder.build_proposal", 1),
    ("collate", "moviead.data.captioning_collate:CaptioningCollator.__call__", 0),
    ("sentence features (lookup + encode)", "moviead.data.sentence_features:SentenceFeatureBank.__call__", 1),
    ("sentence encoder (MiniLM)", "moviead.data.sentence_features:SentenceFeatureBank._encode_missing", 2),
    ("MiniLM forward", "moviead.data.sentence_features:_HFMeanPoolEncoder.encode#texts", 3),
    ("model batch", "moviead.evaluation.decode:model_batch", 0),
    ("DSM", "moviead.models.captioner:ADCaptioner.select", 0),
    ("visual prefix (PME)", "moviead.models.captioner:ADCaptioner.visual_prefix", 0),
    ("prompt assembly", "moviead.models.decoder:VisualPrefixDecoder.assemble", 0),
    ("LM generate", "moviead.models.captioner:generate", 0),
    ("LM prefill", "transformers.models.opt.modeling_opt:OPTForCausalLM.forward#prefill", 1),
    ("LM steps", "transformers.models.opt.modeling_opt:OPTForCausalLM.forward#prefill", 1),
    ("detokenise", "moviead.recipes.base:Recipe.decode", 0),
    ("store rows", "moviead.evaluation.predictions:PredictionStore.append", 0),
)


class StageTimers:
    """Accumulated wall and CPU seconds (and calls) per stage over the runs between :meth:`start` and :meth:`stop`."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.total_wall = self.total_cpu = 0.0
        self.prompt_tokens = self.padded_prompt_tokens = self.texts = self.characters = 0
        self._undo: list[Callable[[], None]] = []
        self._began = (0.0, 0.0)

    def _add(self, label: str, wall: float, cpu: float) -> None:
        self.wall[label] = self.wall.get(label, 0.0) + wall
        self.cpu[label] = self.cpu.get(label, 0.0) + cpu
        self.calls[label] = self.calls.get(label, 0) + 1

    def _wrap(self, label: str, fn: Callable[..., Any], classify: Callable[..., str] | None) -> Callable[..., Any]:
        active = [0]

        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            if active[0]:
                return fn(*args, **kwargs)
            name = classify(*args, **kwargs) if classify else label
            active[0] += 1
            wall, cpu = time.perf_counter(), time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                active[0] -= 1
                self._add(name, time.perf_counter() - wall, time.process_time() - cpu)

        return timed

    def _prefill_or_step(self, *args: Any, **kwargs: Any) -> str:
        """An OPT forward given the prompt's embeddings is the prefill (its real and padded tokens are counted);
        later ones (new token ids) are decoding steps."""
        embeds = kwargs.get("inputs_embeds")
        if embeds is None:
            return "LM steps"
        mask = kwargs.get("attention_mask")
        self.padded_prompt_tokens += int(embeds.shape[0] * embeds.shape[1])
        self.prompt_tokens += int(mask.sum()) if mask is not None else int(embeds.shape[0] * embeds.shape[1])
        return "LM prefill"

    def _texts(self, encoder: Any, texts: Any) -> str:
        """The MiniLM encoder's calls: count the texts and their characters."""
        self.texts += len(texts)
        self.characters += sum(len(t) for t in texts)
        return "MiniLM forward"

    def start(self) -> None:
        """Patch every stage's function (once per target)."""
        done: set[str] = set()
        for label, target, _ in STAGES:
            target, _, kind = target.partition("#")
            if target in done:
                continue
            done.add(target)
            module_name, _, path = target.partition(":")
            owner: Any = importlib.import_module(module_name)
            *parents, attr = path.split(".")
            for parent in parents:
                owner = getattr(owner, parent)
            original = owner.__dict__[attr] if isinstance(owner, type) else getattr(owner, attr)
            classify = {"prefill": self._prefill_or_step, "texts": self._texts}.get(kind)
            setattr(owner, attr, self._wrap(label, original, classify))
            self._undo.append(lambda owner=owner, attr=attr, original=original: setattr(owner, attr, original))
        self._began = (time.perf_counter(), time.process_time())

    def stop(self) -> None:
        """Restore the functions; add this run's total."""
        self.total_wall += time.perf_counter() - self._began[0]
        self.total_cpu += time.process_time() - self._began[1]
        for undo in reversed(self._undo):
            undo()
        self._undo.clear()

    def table(self) -> str:
        """A markdown table: stage, calls, wall s, CPU s, share of the total CPU time."""
        lines = ["| stage | calls | wall s | CPU s | CPU share |", "|---|---|---|---|---|"]
        top_wall = top_cpu = 0.0
        for label, _, depth in STAGES:
            if label not in self.wall:
                continue
            if depth == 0:
                top_wall, top_cpu = top_wall + self.wall[label], top_cpu + self.cpu[label]
            share = self.cpu[label] / self.total_cpu if self.total_cpu else 0.0
            lines.append(f"| {'  ' * depth}{'└ ' if depth else ''}{label} | {self.calls[label]} | "
                         f"{self.wall[label]:.2f} | {self.cpu[label]:.2f} | {share:.0%} |")
        rest_cpu, rest_wall = self.total_cpu - top_cpu, self.total_wall - top_wall
        lines.append(f"| other (loop, meta, rows) | | {rest_wall:.2f} | {rest_cpu:.2f} | "
                     f"{rest_cpu / self.total_cpu if self.total_cpu else 0:.0%} |")
        lines.append(f"| **total** | | {self.total_wall:.2f} | {self.total_cpu:.2f} | 100% |")
        prefills = self.calls.get("LM prefill", 0)
        lines.append(f"\nprompts: {self.prompt_tokens:,} real tokens, {self.padded_prompt_tokens:,} with padding, in "
                     f"{prefills} prefills; sentence encoder: {self.texts:,} texts, {self.characters:,} characters")
        return "\n".join(lines)



