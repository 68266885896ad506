"""Tokenizers for the toy data: small, deterministic, saved so ``AutoTokenizer.from_pretrained(dir)`` reloads them.

The toy grammar is closed, so a BERT WordPiece vocabulary of its words (plus single characters and their
``##`` continuations, so unseen words still tokenise) is both tiny and complete. Built by counting, not by
a trainer, so the files are byte-identical for the same corpus.
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import Iterable

BERT_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


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
