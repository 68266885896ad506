"""Training losses. ``alignment``: Stage-I (VTC, VTM, VTG, CLIP global, frame-word); ``contextual``: Stage-II (CCL);
``distinctive``: Stage-II DistinctAD (distinctive-word BCE)."""

from moviead.losses.alignment import (  # noqa: F401
    PMELossWeights,
    all_gather_batch,
    clip_adaptation_loss,
    clip_global_loss,
    frame_word_loss,
    frame_word_similarity,
    info_nce,
    lm_labels,
    positive_mask,
    sample_hard_negatives,
    vtc_loss,
    vtc_similarities,
    vtg_loss,
    vtm_loss,
)
from moviead.losses.contextual import contextual_contrastive_loss  # noqa: F401
from moviead.losses.distinctive import distinctive_word_loss  # noqa: F401
