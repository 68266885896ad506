"""The distinctive-word loss of DistinctAD Stage-II (SPEC §5.3).

D, the distinctive words of an AD: its content words (stopwords removed, compared lower-cased) that occur in none
of its context ADs. A bag-of-words head, the decoder's LM head applied to the mean of the LM's last hidden states
over the visual-prefix positions, predicts D as a multi-label target over the vocabulary, each word standing for
its first sub-token (the target is built in the data layer:
:class:`moviead.data.distinctive_targets.DistinctiveWordTargets`)::

    L_DW = mean over b, v of BCE(σ(logit_bv), y_bv)      y_bv = 1 iff token v is the first sub-token of a word of D_b
    L    = L_GEN + λ_dw · L_DW                             (λ_dw = 0.5)

Choices: a word of D keeps the form it is first written in within the current AD ("Tamsin", not "tamsin"): the LM
head's vocabulary is cased and the decoder generates the written form, so that is the token the head should score
high. The BCE is averaged over the whole (B, V) grid (torch's default), so a sample with an empty D still pushes
every token down.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def distinctive_word_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Multi-label BCE of the bag-of-words head.

    Args:
        logits: (B, V) the LM head applied to the mean prefix hidden state.
        targets: (B, V) multi-hot {0, 1} (float or bool), 1 on the first sub-token of each distinctive word.

    Returns:
        Scalar: ``mean_{b,v} [softplus(z) - y z]``, computed in float32.
    """
    if logits.shape != targets.shape:
        raise ValueError(
            f"bag-of-words logits {tuple(logits.shape)} and distinctive-word targets {tuple(targets.shape)} differ: "
            "the targets' vocabulary size must be the LM head's output width"
        )
    return F.binary_cross_entropy_with_logits(logits.float(), targets.float())
