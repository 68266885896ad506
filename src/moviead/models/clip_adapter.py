"""DistinctAD Stage-I: adapt the CLIP vision side to the frozen CLIP text tower (SPEC §4.2).

Two input modes:

- ``adapter`` (MAD ships features only): precomputed per-frame CLIP image embeddings (B, T, D), D = the CLIP
  joint-space width, go through a residual temporal transformer whose output projection starts at zero, so
  the adapted features start as the original CLIP features.
- ``tower`` (data with video): frames (B, T, 3, H, W) go through the open_clip vision tower with only its last
  ``n_trainable_blocks`` blocks and the final LayerNorm/projection trainable.

The text tower is frozen (no gradient, always in eval mode). It gives the sentence embedding (open_clip's
``encode_text``) and word embeddings: every token's output through ``ln_final`` and ``text_projection``, the
projection open_clip applies at the EOT token. :meth:`CLIPVideoAdapter.word_mask` keeps the content words.
The losses are in :mod:`moviead.losses.clip_adaptation` (:class:`~moviead.losses.clip_adaptation.CLIPAdaptationLoss`).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import torch
import torch.nn.functional as F
from open_clip.tokenizer import SimpleTokenizer
from open_clip.transformer import text_global_pool
from torch import nn

from moviead.models.configs import CLIPAdaptationConfig
from moviead.wordlists import STOPWORDS

MODES = ("tower", "adapter")


class TemporalAdapter(nn.Module):
    """Residual temporal transformer over per-frame features: y = x + W_out · Enc(x + pos), W_out = 0 at init.

    Padding frames are masked out of attention and left unchanged (y = x there).
    """

    def __init__(self, dim: int, layers: int, heads: int, dropout: float, max_frames: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"adapter_heads={heads} must divide the feature width {dim}")
        self.positions = nn.Parameter(torch.randn(max_frames, dim) * 0.01)
        self.encoder: nn.Module | None = None
        if layers > 0:
            layer = nn.TransformerEncoderLayer(dim, heads, 4 * dim, dropout, activation="gelu",
                                               batch_first=True, norm_first=True)
            self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.out_proj = nn.Linear(dim, dim)
        nn.init.zeros_(self.out_proj.weight)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, features: torch.Tensor, frame_mask: torch.Tensor) -> torch.Tensor:
        """(B, T, D) features, (B, T) bool mask (True = real frame) -> (B, T, D) adapted features."""
        length = features.shape[1]
        if length > self.positions.shape[0]:
            raise ValueError(f"{length} frames exceed max_frames={self.positions.shape[0]}")
        mask = frame_mask.bool()
        hidden = features + self.positions[:length].to(features.dtype)
        if self.encoder is not None:
            padding = ~mask
            padding[~mask.any(dim=1)] = False  # a clip with no real frame: attend anywhere instead of NaN
            hidden = self.encoder(hidden, src_key_padding_mask=padding)
        delta = self.out_proj(self.norm(hidden))  # (B, T, D)
        return features + delta * mask.unsqueeze(-1).to(delta.dtype)


class FrozenTextTower(nn.Module):
    """The text side of an open_clip CLIP model (shared modules, not copies), frozen.

    Supports ``open_clip.CLIP`` (text parts unpacked on the model) and ``CustomTextCLIP`` with an open_clip
    ``TextTransformer`` (``model.text``) that uses a causal mask and no class token.
    """

    def __init__(self, clip_model: nn.Module) -> None:
        super().__init__()
        custom = isinstance(getattr(clip_model, "text", None), nn.Module)
        src = clip_model.text if custom else clip_model
        if getattr(src, "cls_emb", None) is not None or getattr(src, "use_pad_mask", False):
            raise ValueError("text towers with a class token or a padding mask (CoCa, SigLIP) are not supported")
        if not hasattr(src, "token_embedding"):
            raise TypeError(f"{type(src).__name__} is not an open_clip text transformer (no token_embedding)")
        self.token_embedding = src.token_embedding
        self.positional_embedding = src.positional_embedding
        self.transformer = src.transformer
        self.ln_final = src.ln_final
        self.text_projection = src.text_projection
        self.register_buffer("attn_mask", src.attn_mask, persistent=False)
        self.pool_type: str = src.pool_type if custom else src.text_pool_type
        self.eos_id: int | None = getattr(src, "eos_id" if custom else "text_eos_id", None)
        self.context_length: int = src.context_length
        self.vocab_size: int = src.vocab_size
        if self.text_projection is None:
            self.embed_dim = self.ln_final.normalized_shape[0]
        elif isinstance(self.text_projection, nn.Linear):
            self.embed_dim = self.text_projection.out_features
        else:
            self.embed_dim = self.text_projection.shape[1]
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> FrozenTextTower:
        """Stay in eval mode whatever is asked (frozen: no dropout, fixed statistics)."""
        return super().train(False)

    @torch.no_grad()
    def forward(self, text_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, L) token ids, L <= context length -> ``(sentence (B, E), words (B, L, E))``, not normalised."""
        length = text_ids.shape[1]
        cast_dtype = self.transformer.get_cast_dtype()
        x = self.token_embedding(text_ids).to(cast_dtype) + self.positional_embedding[:length].to(cast_dtype)
        mask = None if self.attn_mask is None else self.attn_mask[:length, :length]
        x = self.ln_final(self.transformer(x, attn_mask=mask))  # (B, L, W)
        if self.text_projection is not None:  # per token, so pooling after projecting = open_clip's order
            x = self.text_projection(x) if isinstance(self.text_projection, nn.Linear) else x @ self.text_projection
        sentence = text_global_pool(x, text_ids, self.pool_type, eos_token_id=self.eos_id)
        return sentence, x


def stopword_token_table(vocab_size: int, tokenizer: Any | None = None) -> torch.Tensor:
    """(vocab_size,) bool: True for tokens that are a whole stopword or carry no letter/digit (punctuation).

    Decodes each entry of the BPE vocabulary (``tokenizer.decoder``: open_clip's ``SimpleTokenizer``, the
    default).
    Only whole-word tokens (``...</w>``) are matched against :data:`STOPWORDS`: a word-start piece such as
    ``a`` in ``a|corn</w>`` belongs to a content word and is kept.
    """
    tokenizer = tokenizer if hasattr(tokenizer, "decoder") else SimpleTokenizer()
    byte_decoder = getattr(tokenizer, "byte_decoder", None)
    table = torch.zeros(vocab_size, dtype=torch.bool)
    for token_id, token in tokenizer.decoder.items():
        if token_id >= vocab_size or token.startswith("<"):
            continue
        whole_word = token.endswith("</w>")
        text = token[: -len("</w>")] if whole_word else token
        if byte_decoder is not None:
            text = bytearray(byte_decoder.get(c, ord("?")) for c in text).decode("utf-8", errors="replace")
        text = text.lower()
        if (whole_word and text in STOPWORDS) or not any(c.isalnum() for c in text):
            table[token_id] = True
    return table


class CLIPVideoAdapter(nn.Module):
    """Adapted CLIP video encoder + frozen CLIP text tower, trained by
    :class:`~moviead.losses.clip_adaptation.CLIPAdaptationLoss`.

    Args:
        clip_model: an open_clip CLIP model (e.g. from :func:`load_open_clip`). Its modules are shared, not
            copied: in tower mode the adapted vision tower is ``clip_model.visual`` itself, so saving
            ``clip_model`` (``save_open_clip_dir``) exports the adapted tower. In adapter mode the vision tower
            is not kept.
        config: :class:`CLIPAdaptationConfig`.
        tokenizer: an open_clip ``SimpleTokenizer`` (stopword table, SOT/EOT ids); default: a fresh one.

    Attributes:
        temp: learnable temperature of the global loss; temp_fw: of the frame-word loss. Two, not one shared:
            s_fw (a mean of per-word maxima over frames) lives on a different, compressed scale than the
            global video-sentence cosine, so each loss gets its own softmax sharpness. Both start at
            ``config.temp_init``; :meth:`clamp_temp_` keeps them in [0.001, 0.5] as BLIP-2 does.
        stop_tokens: (V,) bool buffer, True for stopword/punctuation tokens (not saved in the state dict).
    """

    def __init__(self, clip_model: nn.Module, config: CLIPAdaptationConfig, tokenizer: Any | None = None) -> None:
        super().__init__()
        if config.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {config.mode!r}")
        self.config = config
        self.text = FrozenTextTower(clip_model)
        self.embed_dim = self.text.embed_dim
        self.visual: nn.Module | None = None
        self.adapter: TemporalAdapter | None = None
        if config.mode == "adapter":
            if config.feature_dim != self.embed_dim:
                raise ValueError(
                    f"feature_dim={config.feature_dim} differs from the CLIP embed dim {self.embed_dim}: adapter "
                    "mode takes CLIP image embeddings (MAD's ViT-L/14 features: 768) of the same CLIP model"
                )
            self.adapter = TemporalAdapter(self.embed_dim, config.adapter_layers, config.adapter_heads,
                                           config.adapter_dropout, config.max_frames)
        else:
            self.visual = clip_model.visual
            self._unlock_last_blocks(config.n_trainable_blocks)
        self.temp = nn.Parameter(torch.tensor(config.temp_init))
        self.temp_fw = nn.Parameter(torch.tensor(config.temp_init))
        tokenizer = tokenizer if hasattr(tokenizer, "decoder") else SimpleTokenizer()
        self.register_buffer("stop_tokens", stopword_token_table(self.text.vocab_size, tokenizer), persistent=False)
        self.sot_id: int = tokenizer.sot_token_id  # <start_of_text>
        self.eot_id: int = tokenizer.eot_token_id  # <end_of_text>
        self.pad_id = 0  # open_clip pads with 0

    def _unlock_last_blocks(self, n_blocks: int) -> None:
        """Freeze the vision tower except its last ``n_blocks`` blocks, final LayerNorm, pooler and projection."""
        blocks = getattr(getattr(self.visual, "transformer", None), "resblocks", None)
        if blocks is None:
            raise TypeError(f"tower mode needs an open_clip VisionTransformer, got {type(self.visual).__name__}")
        if not 0 <= n_blocks <= len(blocks):
            raise ValueError(f"n_trainable_blocks={n_blocks} outside [0, {len(blocks)}]")
        self.visual.requires_grad_(False)
        trainable: list[nn.Module | nn.Parameter | None] = list(blocks[len(blocks) - n_blocks:])
        for name in ("ln_post", "proj", "attn_pool", "attn_pool_contrastive"):
            trainable.append(getattr(self.visual, name, None))
        for part in trainable:
            if part is not None:
                part.requires_grad_(True)

    def train(self, mode: bool = True) -> CLIPVideoAdapter:
        """Set train/eval mode; the frozen text tower always stays in eval mode."""
        super().train(mode)
        self.text.eval()
        return self

    # -------------------------------------------------------------------------------------------- video side

    def forward(self, frames: torch.Tensor, frame_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Per-frame embeddings in the joint space.

        Args:
            frames: adapter mode (B, T, D) CLIP frame features; tower mode (B, T, 3, H, W) images.
            frame_mask: (B, T) bool/0-1, True for real frames (default: all real).

        Returns:
            (B, T, E) frame embeddings, not normalised. Tower mode: zero at padding frames (not computed);
            adapter mode: the input there.
        """
        if frame_mask is None:
            frame_mask = torch.ones(frames.shape[:2], dtype=torch.bool, device=frames.device)
        mask = frame_mask.bool()
        if self.adapter is not None:
            if frames.dim() != 3:
                raise ValueError(f"adapter mode expects (B, T, D) features, got shape {tuple(frames.shape)}")
            return self.adapter(frames, mask)
        if frames.dim() != 5:
            raise ValueError(f"tower mode expects (B, T, 3, H, W) frames, got shape {tuple(frames.shape)}")
        real = self.visual(frames[mask])  # (n_real, E)
        out = real.new_zeros((*frames.shape[:2], real.shape[-1]))
        out[mask] = real
        return out

    @staticmethod
    def video_embedding(frame_embeds: torch.Tensor, frame_mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, E) frame embeddings, (B, T) mask -> (B, E): L2-normalised mean of normalised real frames."""
        normed = F.normalize(frame_embeds, dim=-1)
        if frame_mask is None:
            return F.normalize(normed.mean(dim=1), dim=-1)
        weights = frame_mask.to(normed.dtype).unsqueeze(-1)  # (B, T, 1)
        mean = (normed * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
        return F.normalize(mean, dim=-1)

    @contextmanager
    def _eval_mode(self) -> Iterator[None]:
        was_training = self.training
        self.eval()
        try:
            yield
        finally:
            self.train(was_training)

    @torch.no_grad()
    def adapted_frame_features(self, frames: torch.Tensor, frame_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Re-extraction: (B, T, D) features or (B, T, 3, H, W) frames -> (B, T, E) adapted frame features.

        What Stage-II and feature extraction read: :meth:`forward` in eval mode without gradient, padding
        frames set to zero. Not normalised (like the CLIP features MAD ships).
        """
        with self._eval_mode():
            out = self(frames, frame_mask)
        if frame_mask is not None:
            out = out * frame_mask.to(out.dtype).unsqueeze(-1)
        return out

    # -------------------------------------------------------------------------------------------- text side

    def encode_text(self, text_ids: torch.Tensor) -> torch.Tensor:
        """(B, L) open_clip token ids -> (B, E) sentence embeddings (= open_clip ``encode_text``), frozen."""
        return self.text(text_ids)[0]

    def encode_words(self, text_ids: torch.Tensor) -> torch.Tensor:
        """(B, L) token ids -> (B, L, E): each token's output through ``ln_final`` and ``text_projection``."""
        return self.text(text_ids)[1]

    def word_mask(self, text_ids: torch.Tensor) -> torch.Tensor:
        """(B, L) token ids -> (B, L) bool: True for content words (not padding, SOT/EOT, stopword, punctuation).

        Positions after the first EOT are excluded too.
        """
        after_eot = (text_ids == self.eot_id).long().cumsum(dim=1) > 0
        special = (text_ids == self.pad_id) | (text_ids == self.sot_id) | after_eot
        stop = self.stop_tokens[text_ids.clamp(0, self.stop_tokens.shape[0] - 1)]
        return ~(special | stop)

    # -------------------------------------------------------------------------------------------- training

    def clamp_temp_(self, min_value: float = 0.001, max_value: float = 0.5) -> None:
        """Clamp both temperatures in place to [min_value, max_value] (call before each step)."""
        with torch.no_grad():
            self.temp.clamp_(min_value, max_value)
            self.temp_fw.clamp_(min_value, max_value)

    # -------------------------------------------------------------------------------------------- on disk

    def save_pretrained(self, out_dir: str | Path) -> Path:  # noqa: F821 (Path: imported in the body)
        """Adapter mode: write ``out_dir/clip_adapter.safetensors`` (this module's whole state: ``adapter.*``, the
        temperatures, the frozen text tower) and ``out_dir/clip_adapter_config.json`` (:attr:`config`); returns the
        weights path.

        Raises:
            ValueError: tower mode (its export is the adapted CLIP itself: ``save_open_clip_dir``).
        """
        import dataclasses
        import json
        from pathlib import Path

        from safetensors.torch import save_model

        from moviead.export_files import CLIP_ADAPTER_CONFIG, CLIP_ADAPTER_WEIGHTS

        if self.adapter is None:
            raise ValueError("save_pretrained writes adapter mode; a tower-mode model is exported as the adapted "
                             "CLIP (moviead.clip_towers.save_open_clip_dir)")
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        save_model(self, str(out / CLIP_ADAPTER_WEIGHTS), metadata={"format": "pt"})
        (out / CLIP_ADAPTER_CONFIG).write_text(json.dumps(dataclasses.asdict(self.config), indent=2) + "\n")
        return out / CLIP_ADAPTER_WEIGHTS

    @staticmethod
    def pretrained_files(path_or_dir: str | Path) -> tuple[Path, Path]:  # noqa: F821
        """The weights file and the ``clip_adapter_config.json`` of an adapter export (its folder or weights file).

        Raises:
            FileNotFoundError: the weights, or the config JSON beside them, are missing (says how to supply them).
        """
        from pathlib import Path

        from moviead.export_files import CLIP_ADAPTER_CONFIG, CLIP_ADAPTER_WEIGHTS

        path = Path(path_or_dir)
        weights = path / CLIP_ADAPTER_WEIGHTS if path.is_dir() else path
        if not weights.is_file():
            raise FileNotFoundError(f"{weights} does not exist: expected the export folder of a clip adaptation run in "
                                    f"adapter mode (with {CLIP_ADAPTER_WEIGHTS} and {CLIP_ADAPTER_CONFIG})")
        config = weights.parent / CLIP_ADAPTER_CONFIG
        if not config.is_file():
            raise FileNotFoundError(
                f"{config} is missing beside {weights.name}: the adapter's own config (CLIPAdaptationConfig as "
                f"JSON, written by CLIPVideoAdapter.save_pretrained). Re-export the run, or write the `clip` section "
                f"of its config.yaml as JSON to {config.name}")
        return weights, config

    @classmethod
    def load_pretrained_config(cls, path_or_dir: str | Path) -> CLIPAdaptationConfig:  # noqa: F821
        """The :class:`CLIPAdaptationConfig` of an adapter export; unknown fields are an error."""
        import dataclasses
        import json

        _, path = cls.pretrained_files(path_or_dir)
        values = json.loads(path.read_text())
        extra = sorted(set(values) - {f.name for f in dataclasses.fields(CLIPAdaptationConfig)})
        if extra:
            raise ValueError(f"{path}: unknown CLIPAdaptationConfig fields {extra}")
        return CLIPAdaptationConfig(**values)

    @classmethod
    def from_pretrained(cls, path_or_dir: str | Path, clip_model: nn.Module | None = None,  # noqa: F821
                        tokenizer: Any | None = None, device: str | torch.device = "cpu") -> CLIPVideoAdapter:
        """An adapter export, loaded strictly, in eval mode.

        Args:
            path_or_dir: the export folder or its ``clip_adapter.safetensors``.
            clip_model: the open_clip model whose text tower the adapter wraps (its weights are replaced by the
                export's); default: built from the stored config's ``clip_model`` (random weights, then loaded).
            tokenizer: an open_clip ``SimpleTokenizer`` (default: a fresh one).
            device: where to load the weights.
        """
        from safetensors.torch import load_model

        weights, _ = cls.pretrained_files(path_or_dir)
        config = cls.load_pretrained_config(weights)
        if config.mode != "adapter":
            raise ValueError(f"{weights}: mode={config.mode!r}; from_pretrained loads adapter-mode exports")
        if clip_model is None:
            from moviead.clip_towers import load_open_clip

            clip_model, _, _ = load_open_clip(config.clip_model, None, random_init=True,
                                              model_config_file=config.clip_model_config_file)
        model = cls(clip_model, config, tokenizer)
        load_model(model, str(weights), strict=True, device=str(device))
        return model.to(device).eval()
