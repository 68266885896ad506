"""PME — the Pre-aligned Movie Encoder of LoCo-MAD (§3.1): a BLIP-2 Q-Former over movie frame features.

Built on transformers' :class:`~transformers.Blip2QFormerModel` (``use_qformer_text_input=True``: separate
feed-forwards for query and text positions, cross-attention to the frames every ``cross_attention_frequency``
layers) fed by :class:`~transformers.models.blip_2.modeling_blip_2.Blip2TextEmbeddings`. We add learnable
queries, a fixed sinusoidal temporal encoding of the frames with a padding mask, the three task masks of the
shared query/text self-attention, a BERT LM head tied to the word embeddings, and the BLIP-2 heads
(``vision_proj``, ``text_proj``, ``itm_head``, ``temp``).

Module names mirror LAVIS's ``Blip2Qformer`` so a checkpoint converts by renaming only (LAVIS -> here):

- ``Qformer.bert.embeddings.{word,position}_embeddings.*`` -> ``embeddings.{word,position}_embeddings.*``
- ``Qformer.bert.embeddings.LayerNorm.*`` -> ``qformer.layernorm.*``
- ``Qformer.bert.encoder.*`` -> ``qformer.encoder.*``, with ``{attention,crossattention}.self.`` ->
  ``{attention,crossattention}.attention.``
- ``Qformer.cls.predictions.*`` -> ``lm_head.*``
- ``query_tokens``, ``temp``, ``vision_proj.*``, ``text_proj.*``, ``itm_head.*``: same names
- ``Qformer.bert.embeddings.position_ids``: a buffer, not saved here.

``frame_norm`` (a LayerNorm on the frame features, the role of BLIP-2's ``ln_vision``) has no LAVIS source.

Inputs are tensors only: ``frames`` (B, T, Dv) float, ``frame_mask`` (B, T) bool (True = real frame; every
sample needs at least one), ``text_ids`` (B, L) long (BERT WordPiece, ``[CLS]`` first), ``text_mask`` (B, L)
bool/int (1 = real token).

On disk (:meth:`PretrainedMovieEncoder.save_pretrained` / :meth:`~PretrainedMovieEncoder.from_pretrained`, shared by
the LAVIS converter and the Stage-I export): ``pme.safetensors`` written by ``safetensors.torch.save_model`` (tied
weights stored once) and ``pme_config.json`` (the :class:`PMEConfig` as JSON) in the same folder.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from transformers import Blip2QFormerModel
from transformers.models.blip_2.modeling_blip_2 import Blip2TextEmbeddings

from moviead.export_files import PME_CONFIG, PME_WEIGHTS, export_sha256
from moviead.models.configs import PMEConfig
from moviead.models.layers import BertLMHead, SinusoidalTemporalEncoding
from moviead.models.qformer_passes import FrameKeys, Last, QueryCache, frame_keys, run_qformer

Task = Literal["vtc", "vtm", "vtg"]


def task_attention_mask(task: Task, num_queries: int, text_mask: torch.Tensor) -> torch.Tensor:
    """Boolean self-attention mask over the joint sequence ``[queries; text]`` for one pretext task.

    - ``vtc``: queries see queries, text sees text (no exchange between modalities);
    - ``vtm``: everything sees everything (bidirectional);
    - ``vtg``: queries see queries; text position i sees all queries and text positions <= i (causal).
    Padded text keys (``text_mask == 0``) are never visible.

    Args:
        task: one of ``"vtc"``, ``"vtm"``, ``"vtg"``.
        num_queries: Nq, the number of query positions at the front of the sequence.
        text_mask: (B, L), nonzero = real token.

    Returns:
        (B, Nq+L, Nq+L) bool, ``[b, i, j]`` True when position i may attend to position j.
    """
    batch, length = text_mask.shape
    n = num_queries + length
    device = text_mask.device
    pos = torch.arange(n, device=device)
    is_query = pos < num_queries  # (N,)
    if task == "vtm":
        allowed = torch.ones(n, n, dtype=torch.bool, device=device)
    elif task == "vtc":
        allowed = is_query[:, None] == is_query[None, :]
    elif task == "vtg":
        causal = pos[None, :] <= pos[:, None]  # key j <= query i
        allowed = (is_query[:, None] & is_query[None, :]) | (~is_query[:, None] & (is_query[None, :] | causal))
    else:
        raise ValueError(f"unknown task {task!r}; expected 'vtc', 'vtm' or 'vtg'")
    key_valid = torch.cat([torch.ones(batch, num_queries, dtype=torch.bool, device=device), text_mask.bool()], 1)
    return allowed[None] & key_valid[:, None, :]  # (B, N, N)


class PretrainedMovieEncoder(nn.Module):
    """The PME: learnable queries read temporally encoded frame features through a BLIP-2 Q-Former.

    Attributes:
        query_tokens: (1, Nq, H) learnable queries.
        embeddings: word + absolute position embeddings of the text (no token types, no LayerNorm).
        qformer: transformers ``Blip2QFormerModel`` (its ``layernorm`` is BERT's embedding LayerNorm).
        lm_head: BERT LM head, ``decoder.weight`` is ``embeddings.word_embeddings.weight``.
        vision_proj, text_proj: H -> E projections for VTC; itm_head: H -> 2 for VTM.
        temp: learnable softmax temperature (scalar), initialised to ``config.temp_init``.
    """

    def __init__(self, config: PMEConfig) -> None:
        super().__init__()
        self.config = config
        qconfig = config.to_qformer_config()
        hidden = config.hidden_size
        self.temporal_encoding = SinusoidalTemporalEncoding(config.max_frames, config.vision_width)
        self.frame_norm = nn.LayerNorm(config.vision_width) if config.frame_layernorm else nn.Identity()
        self.query_tokens = nn.Parameter(torch.zeros(1, config.num_query_tokens, hidden))
        self.embeddings = Blip2TextEmbeddings(qconfig)
        self.qformer = Blip2QFormerModel(qconfig)
        self.lm_head = BertLMHead(hidden, config.vocab_size, config.hidden_act, config.layer_norm_eps)
        self.vision_proj = nn.Linear(hidden, config.embed_dim)
        self.text_proj = nn.Linear(hidden, config.embed_dim)
        self.itm_head = nn.Linear(hidden, 2)
        self.temp = nn.Parameter(torch.tensor(config.temp_init))
        self._init_own_weights()
        self.lm_head.tie_to(self.embeddings.word_embeddings)

    @torch.no_grad()
    def _init_own_weights(self) -> None:
        """BERT-style init for the parts outside ``qformer`` (which transformers initialises itself)."""
        std = self.config.initializer_range
        self.query_tokens.normal_(0.0, std)
        for emb in (self.embeddings.word_embeddings, self.embeddings.position_embeddings):
            emb.weight.normal_(0.0, std)
        self.embeddings.word_embeddings.weight[self.config.pad_token_id].zero_()
        for linear in (self.lm_head.transform.dense, self.vision_proj, self.text_proj, self.itm_head):
            linear.weight.normal_(0.0, std)
            linear.bias.zero_()
        self.lm_head.bias.zero_()

    # ------------------------------------------------------------------ inputs
    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """Frame features for cross-attention: (B, T, Dv) with T <= ``max_frames`` -> (B, T, Dv), normalised and
        temporally encoded (padded frames are hidden by the frame mask where the keys are used)."""
        if frames.shape[-1] != self.config.vision_width:
            raise ValueError(f"frames have width {frames.shape[-1]}, config.vision_width={self.config.vision_width}")
        return self.temporal_encoding(self.frame_norm(frames))  # (B, T, Dv)

    def _queries(self, batch: int) -> torch.Tensor:
        return self.query_tokens.expand(batch, -1, -1)  # (B, Nq, H)

    # ------------------------------------------------------------------ single-modality branches
    def frame_keys(self, frames: torch.Tensor, frame_mask: torch.Tensor | None = None) -> FrameKeys:
        """Cross-attention keys/values of raw frames (B, T, Dv) (frame_mask (B, T)), for every cross layer."""
        return frame_keys(self.qformer, self.encode_frames(frames), frame_mask)

    def query_pass(
        self, frames: torch.Tensor, frame_mask: torch.Tensor | None = None, keep_cache: bool = False
    ) -> tuple[torch.Tensor, QueryCache | None]:
        """Queries only (they see each other and the frames): (B, T, Dv) -> (B, Nq, H), and their keys/values.

        Args:
            frames: (B, T, Dv); frame_mask: (B, T) bool or None.
            keep_cache: also return each layer's query keys/values and the frames' cross-attention keys/values
                (a :class:`QueryCache`): :meth:`vtg_text_outputs` computes VTG's text positions from it without a
                second query pass, and :meth:`itm_logits` reuses its frame projections.

        Returns:
            ``(query_out, cache)``: (B, Nq, H) and the cache (None unless ``keep_cache``).
        """
        keys = self.frame_keys(frames, frame_mask)
        cache = QueryCache(frames=keys) if keep_cache else None
        out, _ = run_qformer(self.qformer, self._queries(frames.shape[0]), None, None, None, keys, record=cache,
                             attn=self.config.attn_implementation)
        assert out is not None
        return out, cache

    def query_outputs(self, frames: torch.Tensor, frame_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Queries only (they see each other and the frames): (B, T, Dv) -> (B, Nq, H).

        These are the compact visual features: the VTC image side and Stage-II's visual tokens.
        """
        return self.query_pass(frames, frame_mask)[0]

    def forward(self, frames: torch.Tensor, frame_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Visual tokens for Stage-II: frames (B, T, Dv), frame_mask (B, T) -> (B, Nq, H)."""
        return self.query_outputs(frames, frame_mask)

    def project_queries(self, query_out: torch.Tensor) -> torch.Tensor:
        """VTC video features from query outputs: (B, Nq, H) -> (B, Nq, E), L2-normalised ``vision_proj``."""
        return F.normalize(self.vision_proj(query_out), dim=-1)

    def query_features(self, frames: torch.Tensor, frame_mask: torch.Tensor | None = None) -> torch.Tensor:
        """VTC video features: (B, T, Dv) -> (B, Nq, E), L2-normalised ``vision_proj`` of each query."""
        return self.project_queries(self.query_outputs(frames, frame_mask))

    def text_outputs(self, text_ids: torch.Tensor, text_mask: torch.Tensor, cls_only: bool = False) -> torch.Tensor:
        """Text only (BERT-style bidirectional self-attention): (B, L) ids -> (B, L, H) hidden states.

        Padded positions are zeros. ``cls_only``: only the first ([CLS]) output, (B, 1, H), whose last layer is
        computed at that position alone.
        """
        text_embeds = self.embeddings(input_ids=text_ids)  # (B, L, H)
        mask = text_mask.bool()
        last = "first" if cls_only else "all"
        _, out = run_qformer(self.qformer, None, text_embeds, mask, mask[:, None, :], last=last,
                             attn=self.config.attn_implementation)
        assert out is not None
        return out

    def text_features(self, text_ids: torch.Tensor, text_mask: torch.Tensor) -> torch.Tensor:
        """VTC text features: (B, L) -> (B, E), L2-normalised ``text_proj`` of the [CLS] output."""
        cls = self.text_outputs(text_ids, text_mask, cls_only=True)[:, 0]  # (B, H)
        return F.normalize(self.text_proj(cls), dim=-1)

    # ------------------------------------------------------------------ joint branch
    def joint_outputs(
        self,
        frames: torch.Tensor | FrameKeys,
        frame_mask: torch.Tensor | None,
        text_ids: torch.Tensor,
        text_mask: torch.Tensor,
        task: Task,
        last: Last = "all",
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Queries and text through one shared self-attention under the mask of ``task``.

        Args:
            frames: (B, T, Dv), or the videos' :class:`FrameKeys` (e.g. selected from a query pass's cache);
            frame_mask: (B, T) or None (ignored with :class:`FrameKeys`); text_ids, text_mask: (B, L).
            task: ``"vtc"``, ``"vtm"`` or ``"vtg"`` (see :func:`task_attention_mask`).
            last: ``"queries"`` computes the last layer at the query positions only (no text output).

        Returns:
            ``(query_out, text_out)``: (B, Nq, H) and (B, L, H) (zeros at padding; None for ``last="queries"``).
        """
        keys = frames if isinstance(frames, FrameKeys) else self.frame_keys(frames, frame_mask)
        queries = self._queries(text_ids.shape[0])
        text = self.embeddings(input_ids=text_ids)  # (B, L, H)
        allowed = task_attention_mask(task, queries.shape[1], text_mask)  # (B, Nq+L, Nq+L)
        query_out, text_out = run_qformer(self.qformer, queries, text, text_mask.bool(), allowed, keys, last,
                                          attn=self.config.attn_implementation)
        assert query_out is not None
        return query_out, text_out

    def itm_logits(
        self,
        frames: torch.Tensor | FrameKeys,
        frame_mask: torch.Tensor | None,
        text_ids: torch.Tensor,
        text_mask: torch.Tensor,
    ) -> torch.Tensor:
        """VTM: bidirectional joint pass, ``itm_head`` on each query output -> (B, Nq, 2) (average over Nq).

        ``frames`` (B, T, Dv) or :class:`FrameKeys`. The last layer is computed at the query positions only (the
        text outputs are not read).
        """
        query_out, _ = self.joint_outputs(frames, frame_mask, text_ids, text_mask, "vtm", last="queries")
        return self.itm_head(query_out)

    def vtg_text_outputs(self, cache: QueryCache, text_ids: torch.Tensor, text_mask: torch.Tensor) -> torch.Tensor:
        """VTG's text outputs (B, L, H): causal text attending to the queries of :meth:`query_pass`'s ``cache``.

        Equal (in eval mode) to the text part of ``joint_outputs(..., "vtg")``, without recomputing the queries.
        """
        num_queries = cache.keys[0].shape[2]
        allowed = task_attention_mask("vtg", num_queries, text_mask)[:, num_queries:]  # (B, L, Nq+L)
        text_embeds = self.embeddings(input_ids=text_ids)  # (B, L, H)
        _, out = run_qformer(self.qformer, None, text_embeds, text_mask.bool(), allowed, prefix=cache,
                             attn=self.config.attn_implementation)
        assert out is not None
        return out

    def lm_logits(
        self, frames: torch.Tensor, frame_mask: torch.Tensor | None, text_ids: torch.Tensor, text_mask: torch.Tensor
    ) -> torch.Tensor:
        """VTG: causal joint pass, LM head on the text outputs -> (B, L, V); logits at t predict token t+1.

        As in BLIP-2, callers may replace ``text_ids[:, 0]`` by a decoder BOS token (LAVIS's ``[DEC]``).
        """
        _, cache = self.query_pass(frames, frame_mask, keep_cache=True)
        return self.lm_head(self.vtg_text_outputs(cache, text_ids, text_mask))

    @torch.no_grad()
    def clamp_temp_(self, min_value: float = 0.001, max_value: float = 0.5) -> None:
        """Clamp ``temp`` in place to [min_value, max_value] (BLIP-2 does this before each VTC step)."""
        self.temp.clamp_(min_value, max_value)

    # ------------------------------------------------------------------ on disk
    def save_pretrained(self, out_dir: str | Path, config: PMEConfig | None = None) -> Path:
        """Write ``out_dir/pme.safetensors`` and ``out_dir/pme_config.json``; returns the weights path.

        Args:
            out_dir: the export folder (created).
            config: the config to store (default ``self.config``); it must describe this model's shapes
                (non-structural fields such as dropout may differ).
        """
        weights = Path(out_dir) / PME_WEIGHTS
        write_pme(self, config or self.config, weights)
        return weights

    @classmethod
    def from_pretrained(cls, path_or_dir: str | Path, device: str | torch.device = "cpu") -> PretrainedMovieEncoder:
        """Build a PME from ``pme_config.json`` and load its safetensors weights strictly; returned in eval mode.

        Args:
            path_or_dir: the ``.safetensors`` file, or a folder holding ``pme.safetensors`` (or a single
                ``*.safetensors``) and ``pme_config.json``.
            device: where to load the weights.

        Raises:
            FileNotFoundError: no weights file, or no ``pme_config.json`` beside it.
            ValueError: the config has fields :class:`PMEConfig` does not know.
        """
        from safetensors.torch import load_model

        weights, config_path = pme_export_files(path_or_dir)
        model = cls(load_pme_config(config_path))
        load_model(model, str(weights), strict=True, device=str(device))
        return model.to(device).eval()


def write_pme(model: PretrainedMovieEncoder, config: PMEConfig, weights: str | Path) -> None:
    """Write ``model`` to the safetensors file ``weights`` and ``config`` as ``pme_config.json`` beside it."""
    from safetensors.torch import save_model

    weights = Path(weights)
    weights.parent.mkdir(parents=True, exist_ok=True)
    save_model(model, str(weights), metadata={"format": "pt"})
    (weights.parent / PME_CONFIG).write_text(json.dumps(dataclasses.asdict(config), indent=2) + "\n")


def load_pme_config(path: str | Path) -> PMEConfig:
    """Read a ``pme_config.json``; unknown fields are an error."""
    path = Path(path)
    values = json.loads(path.read_text())
    names = {f.name for f in dataclasses.fields(PMEConfig)}
    extra = sorted(set(values) - names)
    if extra:
        raise ValueError(f"{path}: unknown PMEConfig fields {extra}")
    return PMEConfig(**values)


def pme_export_files(path_or_dir: str | Path) -> tuple[Path, Path]:
    """The weights file and the ``pme_config.json`` of a PME export (a folder or its ``.safetensors`` file).

    Raises:
        FileNotFoundError: no single weights file in the folder, or no config beside the weights.
    """
    path = Path(path_or_dir)
    weights = path
    if path.is_dir():
        weights = path / PME_WEIGHTS
        if not weights.exists():
            found = sorted(path.glob("*.safetensors"))
            if len(found) != 1:
                raise FileNotFoundError(f"{path}: expected {PME_WEIGHTS} or a single *.safetensors, got {found}")
            weights = found[0]
    elif not path.is_file():
        raise FileNotFoundError(f"{path} does not exist (expected a PME export folder or its .safetensors file)")
    config_path = weights.parent / PME_CONFIG
    if not config_path.exists():
        raise FileNotFoundError(f"{config_path} not found beside {weights}")
    return weights, config_path


def pme_export_sha256(path_or_dir: str | Path) -> str:
    """Content hash of a PME export: its tensors, then its ``pme_config.json``'s bytes (:func:`export_sha256`)."""
    weights, config = pme_export_files(path_or_dir)
    return export_sha256(weights, config)
