"""Tokenizers for the toy data: small, deterministic, saved so ``AutoTokenizer.from_pretrained(dir)`` reloads them.

The toy grammar is closed, so a BERT WordPiece vocabulary of its words (plus single characters and their
``##`` continuations, so unseen words still tokenise) is both tiny and complete. Built by counting, not by
a trainer, so the files are byte-identical for the same corpus.

The toy *decoder* tokenizer is a byte-level BPE like OPT's and GPT-2's, trained on the toy corpus: every
byte is in its alphabet, so any text round-trips, and the closed grammar makes each toy word one token. The
trainer breaks ties between equally frequent pairs by the pair itself, so the files are byte-identical for
the same corpus too.
"""

from __future__ import annotations

import string
from collections.abc import Iterable
from pathlib import Path

BERT_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
BPE_SPECIALS = ("<pad>", "</s>", "<unk>")  # ids 0, 1, 2; "</s>" is both BOS and EOS, as in OPT


def write_bert_wordpiece(texts: Iterable[str], out_dir: str | Path) -> Path:
    """Write an uncased BERT WordPiece tokenizer whose vocabulary covers ``texts``; returns ``out_dir``.

    Vocabulary: the specials, the sorted lower-cased words of ``texts`` (BERT basic tokenisation), every
    ASCII letter, digit and punctuation mark, and their ``##`` continuations.
    """
    from tokenizers.normalizers import BertNormalizer
    from tokenizers.pre_tokenizers import BertPreTokenizer
    from transformers import BertTokenizer

    normalizer, splitter = BertNormalizer(lowercase=True), BertPreTokenizer()
    words = sorted({w for text in texts for w, _ in splitter.pre_tokenize_str(normalizer.normalize_str(text))})
    chars = list(string.ascii_lowercase + string.digits + string.punctuation)
    vocab = list(BERT_SPECIALS) + [w for w in words if w not in chars] + chars + [f"##{c}" for c in chars]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    vocab_file = out / "vocab.txt"
    vocab_file.write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = BertTokenizer(vocab={token: i for i, token in enumerate(vocab)}, do_lower_case=True,
                              model_max_length=512)
    tokenizer.save_pretrained(str(out))
    return out


def write_toy_bpe_tokenizer(texts: Iterable[str], out_dir: str | Path, vocab_size: int = 1024) -> Path:
    """Train a byte-level BPE tokenizer on ``texts`` and save it to ``out_dir``; returns ``out_dir``.

    Unlike OPT's tokenizer it adds a prefix space, so a word is the same token at the start of a text and after a
    space: a name that opens a subtitle ("Kellan, over here!") and the same name inside an AD are one token, which a
    tiny model can copy from its context with one attention lookup instead of also learning a token-to-token map.
    Decoded text therefore starts with a space. Like OPT, ``</s>`` is BOS and
    EOS and starts every encoded text when special tokens are added, ``<pad>`` pads, ``<unk>`` is never produced
    (every byte has a token). Merges stop at ``vocab_size`` tokens or when every word of ``texts`` is a single
    token, whichever comes first. Saved as ``tokenizer.json`` + ``tokenizer_config.json``;
    ``AutoTokenizer.from_pretrained`` reloads it as a fast tokenizer.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    pad, eos, unk = BPE_SPECIALS
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(BPE_SPECIALS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(list(texts), trainer)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{eos} $A", pair=f"{eos} $A {eos} $B", special_tokens=[(eos, tokenizer.token_to_id(eos))]
    )
    wrapped = PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token=eos, eos_token=eos, pad_token=pad,
                                      unk_token=unk, clean_up_tokenization_spaces=False, model_max_length=1024)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    wrapped.save_pretrained(str(out))
    return out
