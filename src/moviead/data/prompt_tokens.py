"""The decoder's prompt vocabulary (SPEC §5.1, LoCo-MAD eq. 10): special tokens, stop tokens, prompt ids.

The decoder input of one sample is::

    prompt · <b_q> · visual tokens · <e_q> · [<b_t> AD <e_t> <b_s> subtitles <e_s>]* · instruction · target

The six markers are added to the tokenizer as special tokens (never split, skipped when decoding). Generation
stops at the first token whose text holds a full stop or a newline, whatever the tokenizer's merges
(``"."``, ``".\\n"``, ``"..."``, ``"Ċ"``...), or at EOS.
"""

from __future__ import annotations

from typing import Any

PROMPT_TOKEN_NAMES: tuple[str, ...] = ("b_q", "e_q", "b_t", "e_t", "b_s", "e_s")
"""Names of the markers: query (visual tokens), text (context AD), subtitles; b = begin, e = end."""

PROMPT_SPECIAL_TOKENS: tuple[str, ...] = tuple(f"<{name}>" for name in PROMPT_TOKEN_NAMES)
"""The marker strings, in the order of :data:`PROMPT_TOKEN_NAMES`: ``<b_q> <e_q> <b_t> <e_t> <b_s> <e_s>``."""

STOP_CHARACTERS: tuple[str, ...] = (".", "\n")


def add_prompt_special_tokens(tokenizer: Any) -> dict[str, int]:
    """Add the six markers as extra special tokens (those not there yet); returns name → id (``"b_q"`` → ...).

    Idempotent: a second call adds nothing and returns the same ids. New tokens get the ids after the
    tokenizer's current vocabulary (``len(tokenizer)`` before the call), in :data:`PROMPT_SPECIAL_TOKENS` order.
    """
    vocabulary = tokenizer.get_vocab()
    missing = [token for token in PROMPT_SPECIAL_TOKENS if token not in vocabulary]
    if missing:
        tokenizer.add_special_tokens({"extra_special_tokens": missing}, replace_extra_special_tokens=False)
    ids = tokenizer.convert_tokens_to_ids(list(PROMPT_SPECIAL_TOKENS))
    return dict(zip(PROMPT_TOKEN_NAMES, (int(i) for i in ids)))


def stop_token_ids(tokenizer: Any) -> tuple[int, ...]:
    """Sorted ids of every token whose decoded text contains ``"."`` or ``"\\n"``, plus EOS when there is one."""
    size = len(tokenizer)
    texts = tokenizer.batch_decode([[i] for i in range(size)], skip_special_tokens=False,
                                   clean_up_tokenization_spaces=False)  # fmt: skip
    stops = {i for i, text in enumerate(texts) if any(c in text for c in STOP_CHARACTERS)}
    if tokenizer.eos_token_id is not None:
        stops.add(int(tokenizer.eos_token_id))
    return tuple(sorted(stops))


def ensure_pad_token(tokenizer: Any) -> int:
    """Set the pad token to EOS when the tokenizer has none (GPT-2, Qwen base models); returns the pad id.

    Raises:
        ValueError: the tokenizer has neither a pad nor an EOS token.
    """
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ValueError("the tokenizer has neither a pad nor an eos token; set tokenizer.pad_token first")
        tokenizer.pad_token = tokenizer.eos_token
    return int(tokenizer.pad_token_id)


def prompt_and_instruction_ids(tokenizer: Any, prompt: str, instruction: str) -> tuple[list[int], list[int]]:
    """Ids of the prompt (the tokenizer's BOS first, when it has one) and of the instruction (no special tokens)."""
    bos = [int(tokenizer.bos_token_id)] if tokenizer.bos_token_id is not None else []
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"] if prompt else []
    instruction_ids = tokenizer(instruction, add_special_tokens=False)["input_ids"] if instruction else []
    return bos + list(prompt_ids), list(instruction_ids)
