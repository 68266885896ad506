"""Training losses. ``alignment``: Stage-I (VTC, VTM, VTG, CLIP global, frame-word); ``contextual``: Stage-II (CCL)."""

from moviead.losses.alignment import (  # noqa: F401
    all_gather_batch,
    vtc_similarities,
    info_nce,
    vtc_loss,
    positive_mask,
    sample_hard_negatives,
    vtm_loss,
    lm_labels,
    vtg_loss,
    PMELossWeights,
    clip_global_loss,
    frame_word_similarity,
    frame_word_loss,
    clip_adaptation_loss,
)
from moviead.losses.contextual import contextual_contrastive_loss  # noqa: F401
