import numpy as np
import torch

from moviead.data.collate import ADCollator, BatchKey, ClipExample
from moviead.data.context import ADContext, ContextItem
from moviead.data.records import ADRecord


def _examples() -> list[ClipExample]:
    rng = np.random.default_rng(0)
    return [
        ClipExample(ADRecord("m", 0, 0.0, 1.0, "She opens the door."), rng.standard_normal((3, 4)).astype(np.float32),
                    ADContext()),
        ClipExample(ADRecord("m", 1, 2.0, 3.0, "He smiles."), rng.standard_normal((5, 4)).astype(np.float32),
                    ADContext(ads=(ContextItem("ad", 0.0, 1.0, "She opens the door.", 0),),
                              subtitles=(ContextItem("subtitle", 1.2, 1.8, "Hello, Tom."),))),
    ]


def test_frames_padded_with_mask_and_meta_kept() -> None:
    examples = _examples()
    batch = ADCollator()(examples)
    assert batch[BatchKey.FRAMES].shape == (2, 5, 4) and batch[BatchKey.FRAME_MASK].tolist() == [
        [True, True, True, False, False], [True] * 5]
    assert torch.equal(batch[BatchKey.FRAMES][0, :3], torch.from_numpy(examples[0].frames))
    assert batch[BatchKey.FRAMES][0, 3:].abs().sum() == 0
    assert batch[BatchKey.META][1]["context"] == ["She opens the door.", "Hello, Tom."]
    assert BatchKey.TEXT_IDS not in batch


def test_tokenised_text_and_context(bert_tokenizer) -> None:
    batch = ADCollator(bert_tokenizer, max_text_tokens=16, max_context_tokens=8)(_examples())
    ids, mask = batch[BatchKey.TEXT_IDS], batch[BatchKey.TEXT_MASK]
    assert ids.dtype == torch.int64 and mask.dtype == torch.bool
    expected = bert_tokenizer("He smiles.")["input_ids"]
    assert ids[1, : len(expected)].tolist() == expected and int(mask[1].sum()) == len(expected)
    assert batch[BatchKey.CONTEXT_IDS].shape[1] == 8  # truncated to max_context_tokens
    assert bert_tokenizer.decode(batch[BatchKey.CONTEXT_IDS][1], skip_special_tokens=True) .startswith("she opens")
