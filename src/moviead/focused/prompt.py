"""The FocusedAD decoder input: the visual-prefix layout with a soft prompt and a per-clip instruction.

Per sample the LM reads (SPEC §5.1 plus FocusedAD §3.2-3.3)::

    prompt · <b_q> · Proj(scene tokens) · <e_q> · context · soft prompt (n_soft) · instruction · target

where ``context`` is the decoder's (:meth:`VisualPrefixDecoder.context_ids`: the selected previous ADs and their
subtitles, last ``max_context_tokens`` kept) and, inside the instruction, each region position is replaced by that
region's K character tokens (as many as are valid). Embeddings come from :meth:`VisualPrefixDecoder.embed_tokens`;
the scene tokens, soft prompt and character tokens are written over placeholder positions, so gradients reach
all three. The loss and generation use the result as any :class:`DecoderInputs`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from moviead.models.decoder import DecoderInputs, VisualPrefixDecoder, pad_token_rows, target_lists


@dataclass(frozen=True)
class FocusedPrompt:
    """The per-sample parts beyond the decoder's own: soft prompt (S, E) or None; instruction ids, mask and region
    index (B, Li); character tokens (B, C, K, E) and their mask (B, C, K), or None without character tokens."""

    soft_prompt: torch.Tensor | None
    instruction_ids: torch.Tensor
    instruction_mask: torch.Tensor
    instruction_region: torch.Tensor
    region_tokens: torch.Tensor | None = None
    region_token_mask: torch.Tensor | None = None


def assemble_focused(
    decoder: VisualPrefixDecoder,
    visual: torch.Tensor,
    visual_mask: torch.Tensor | None,
    proposal: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
    selected: torch.Tensor,
    prompt: FocusedPrompt,
    target_ids: torch.Tensor | None = None,
    target_mask: torch.Tensor | None = None,
    padding_side: Literal["right", "left"] = "right",
) -> DecoderInputs:
    """Build the padded LM input of a batch (layout in the module docstring).

    Args:
        visual: (B, Q, Dv) scene tokens; visual_mask: (B, Q) bool or None.
        proposal: (ad_ids, ad_mask, sub_ids, sub_mask), each (B, P, L·); selected: (B, P) bool.
        prompt: soft prompt, instruction and character tokens.
        target_ids, target_mask: (B, Lt), or None for generation; padding_side: right (training) or left.
    """
    if padding_side not in ("right", "left"):
        raise ValueError(f"padding_side must be 'right' or 'left', got {padding_side!r}")
    batch, num_q = visual.shape[:2]
    device = visual.device
    vis_keep = (torch.ones(batch, num_q, dtype=torch.bool, device=device) if visual_mask is None
                else visual_mask.bool())
    n_vis = vis_keep.sum(1).tolist()
    n_soft = 0 if prompt.soft_prompt is None else int(prompt.soft_prompt.shape[0])
    ad, ad_m, sub, sub_m = (t.tolist() for t in (proposal[0], proposal[1].bool(), proposal[2], proposal[3].bool()))
    sel = selected.bool().tolist()
    instr_ids, instr_mask = prompt.instruction_ids.tolist(), prompt.instruction_mask.bool().tolist()
    instr_region = prompt.instruction_region.tolist()
    token_counts = None if prompt.region_token_mask is None else prompt.region_token_mask.bool().tolist()
    targets = target_lists(target_ids, target_mask, batch)

    s, pad = decoder.special_ids, decoder.pad_token_id
    sequences: list[list[int]] = []
    inserts: list[list[tuple[int, str, tuple[int, ...]]]] = []  # (position in sequence, source, source index)
    for b in range(batch):
        seq = [*decoder.prompt_ids, s["b_q"]]
        places = [(len(seq) + q, "visual", ()) for q in range(n_vis[b])]
        seq += [pad] * n_vis[b]
        seq += [s["e_q"], *decoder.context_ids(ad[b], ad_m[b], sub[b], sub_m[b], sel[b])]
        places += [(len(seq) + i, "soft", (i,)) for i in range(n_soft)]
        seq += [pad] * n_soft
        for token, keep, region in zip(instr_ids[b], instr_mask[b], instr_region[b]):
            if not keep:
                continue
            if region < 0:
                seq.append(token)
                continue
            if token_counts is None:
                raise ValueError("the instruction has region positions but no character tokens were given")
            for k, valid in enumerate(token_counts[b][region]):
                if valid:
                    places.append((len(seq), "region", (b, region, k)))
                    seq.append(pad)
        sequences.append(seq + targets[b])
        inserts.append(places)
    ids, labels, attention, offsets = pad_token_rows(sequences, targets, pad, padding_side)
    rows: dict[str, list[int]] = {"visual": [], "soft": [], "region": []}
    cols: dict[str, list[int]] = {"visual": [], "soft": [], "region": []}
    sources: dict[str, list[tuple[int, ...]]] = {"soft": [], "region": []}
    for b, offset in enumerate(offsets):
        for position, kind, source in inserts[b]:
            rows[kind].append(b)
            cols[kind].append(offset + position)
            if kind != "visual":
                sources[kind].append(source)
    ids, labels, attention = ids.to(device), labels.to(device), attention.to(device)
    position_ids = (attention.cumsum(1) - 1) * attention

    embeds = decoder.embed_tokens(ids)  # (B, L, E)
    connector = decoder.projector  # FocusedAD's visual connector: an MLP, or a Linear (connector=linear)
    values = [connector(visual.to(next(connector.parameters()).dtype))[vis_keep]]  # (sum n_vis, E), row-major
    if sources["soft"]:
        assert prompt.soft_prompt is not None
        values.append(prompt.soft_prompt[torch.tensor([i for (i,) in sources["soft"]], device=device)])
    if sources["region"]:
        assert prompt.region_tokens is not None
        index = torch.tensor(sources["region"], dtype=torch.long, device=device)  # (n, 3): b, c, k
        values.append(prompt.region_tokens[index[:, 0], index[:, 1], index[:, 2]])
    all_rows = rows["visual"] + rows["soft"] + rows["region"]
    all_cols = cols["visual"] + cols["soft"] + cols["region"]
    where = (torch.tensor(all_rows, dtype=torch.long, device=device), torch.tensor(all_cols, dtype=torch.long,
                                                                                  device=device))
    embeds = embeds.index_put(where, torch.cat([v.to(embeds.dtype) for v in values]))
    return DecoderInputs(embeds, attention, position_ids, labels if target_ids is not None else None)
