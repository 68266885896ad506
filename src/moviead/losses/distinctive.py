"""The distinctive-word loss of DistinctAD Stage-II (SPEC §5.3).

D, the distinctive words of an AD: its content words (stopwords removed, compared lower-cased) that occur in none
of its context ADs. A bag-of-words head, the decoder's LM head applied to the LM's last hidden state at the last
prompt position (after the visual prefix, the context ADs and the instruction: it has seen what makes a word
distinctive), predicts D as a multi-label target over the vocabulary, each word standing for its first sub-token
(the target is built in the data layer: :class:`moviead.data.distinctive_targets.DistinctiveWordTargets`)::

    ℓ_bv  = BCE(σ(z_bv), y_bv) = softplus(z_bv) - y_bv z_bv     y_bv = 1 iff token v is the first sub-token of a
                                                                 word of D_b
    L_DW  = mean_{(b,v): y_bv = 1} ℓ_bv + mean_{(b,v): y_bv = 0} ℓ_bv
    L     = L_GEN + λ_dw · L_DW                                  (λ_dw = 0.5)

Choices: positives and negatives are averaged separately over the batch (a term without entries is 0), so the
positives weigh as much as the negatives whatever the vocabulary size V: a plain mean over the (B, V) grid gives the
positives a weight of about |D|/V (≈ 1e-4 with GPT-2's 50k tokens), and the head learns to score every token low.
Averaging per batch rather than per sample lets a sample with an empty D still push its tokens down. A word of D
keeps the form it is first written in within the current AD ("Tamsin", not "tamsin"): the LM head's vocabulary is
cased and the decoder generates the written form, so that is the token the head should score high.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def distinctive_word_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Multi-label BCE of the bag-of-words head, positives and negatives averaged separately.

    Args:
        logits: (B, V) the LM head applied to the last prompt position's hidden state.
        targets: (B, V) multi-hot {0, 1} (float or bool), 1 on the first sub-token of each distinctive word.

    Returns:
        Scalar: ``mean_{y=1} [softplus(z) - z] + mean_{y=0} softplus(z)``, computed in float32.
    """
    if logits.shape != targets.shape:
        raise ValueError(
            f"bag-of-words logits {tuple(logits.shape)} and distinctive-word targets {tuple(targets.shape)} differ: "
            "the targets' vocabulary size must be the LM head's output width"
        )
    y = targets.float()
    per_entry = F.binary_cross_entropy_with_logits(logits.float(), y, reduction="none")  # (B, V)
    positive = y > 0.5
    n_pos, n_neg = positive.sum(), (~positive).sum()
    pos = (per_entry * positive).sum() / n_pos.clamp(min=1)
    neg = (per_entry * ~positive).sum() / n_neg.clamp(min=1)
    return pos + neg
