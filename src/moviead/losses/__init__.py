"""Training losses: functions of tensors, and one module per training objective (``loss(model, batch)``).

``pme``: LoCo-MAD Stage-I (VTC, VTM, VTG; :class:`PMELoss`); ``clip_adaptation``: DistinctAD Stage-I (CLIP global,
frame-word; :class:`CLIPAdaptationLoss`); ``captioning``: Stage-II (:class:`CaptioningLoss`: L_GEN with the CCL of
``contextual`` and the distinctive-word loss of ``distinctive``); ``contrastive``: the symmetric InfoNCE both Stage-I
objectives use; ``distributed``: gathering rows over ranks (with gradient) for losses over the global batch.
"""

from moviead.losses.captioning import CaptioningLoss, CaptionLosses  # noqa: F401
from moviead.losses.clip_adaptation import (  # noqa: F401
    CLIPAdaptationLoss,
    clip_adaptation_loss,
    clip_global_loss,
    frame_word_loss,
    frame_word_similarity,
)
from moviead.losses.contextual import contextual_contrastive_loss, dsm_contextual_loss  # noqa: F401
from moviead.losses.contrastive import info_nce  # noqa: F401
from moviead.losses.distinctive import distinctive_word_loss  # noqa: F401
from moviead.losses.distributed import all_gather_batch, gather_padded  # noqa: F401
from moviead.losses.pme import (  # noqa: F401
    PMELoss,
    PMELossWeights,
    lm_labels,
    positive_mask,
    sample_hard_negatives,
    vtc_loss,
    vtc_similarities,
    vtg_loss,
    vtg_loss_at_labels,
    vtm_loss,
)
