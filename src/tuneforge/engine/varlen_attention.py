"""Variable-length attention for padding-free batches on SDPA.

A padding-free row holds several samples whose position ids restart at 0. Plain SDPA handles that with a
block-diagonal T×T mask: it computes (and, on CPU, stores for backward) attention over the whole row, most of it
masked away. Here each sample attends within its own span with `is_causal=True` and no mask, so compute and
memory follow Σ len² instead of T², and the fused kernels stay usable. Registered through transformers'
AttentionInterface / AttentionMaskInterface (their extension points), never by patching a model.
"""

from __future__ import annotations

import itertools
from typing import Any

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface, sdpa_mask

NAME = "tuneforge_varlen"


def varlen_sdpa_attention(module: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                          attention_mask: torch.Tensor | None, scaling: float | None = None, dropout: float = 0.0,
                          position_ids: torch.Tensor | None = None, **kwargs: Any) -> tuple[torch.Tensor, None]:
    """query [1, H, T, D], key / value [1, Hkv, T, D] → output [1, T, H, D]."""
    if (attention_mask is not None or position_ids is None or query.shape[0] != 1
            or query.shape[2] != key.shape[2] or position_ids.shape[-1] != query.shape[2]):
        # Padded batches and generation with a KV cache: the ordinary SDPA path.
        return sdpa_attention_forward(module, query, key, value, attention_mask, scaling=scaling,
                                      dropout=dropout, **kwargs)
    positions = position_ids.reshape(-1)
    starts = (positions == 0).nonzero().flatten().tolist()
    if not starts or starts[0] != 0:
        return sdpa_attention_forward(module, query, key, value, attention_mask, scaling=scaling,
                                      dropout=dropout, **kwargs)
    bounds = [*starts, query.shape[2]]
    groups = query.shape[1] // key.shape[1]
    if groups > 1:
        key = key.repeat_interleave(groups, dim=1)
        value = value.repeat_interleave(groups, dim=1)
    outputs = [
        torch.nn.functional.scaled_dot_product_attention(
            query[:, :, a:b], key[:, :, a:b], value[:, :, a:b], is_causal=True, scale=scaling,
            dropout_p=dropout if module.training else 0.0,
        )
        for a, b in itertools.pairwise(bounds)
    ]
    return torch.cat(outputs, dim=2).transpose(1, 2).contiguous(), None


def varlen_mask(*args: Any, attention_mask: torch.Tensor | None = None, **kwargs: Any) -> torch.Tensor | None:
    """No mask for an unpadded batch (spans come from the position ids); SDPA's mask otherwise."""
    if attention_mask is None:
        return None
    return sdpa_mask(*args, attention_mask=attention_mask, **kwargs)


def register() -> str:
    if NAME not in ALL_MASK_ATTENTION_FUNCTIONS:
        AttentionInterface.register(NAME, varlen_sdpa_attention)
        AttentionMaskInterface.register(NAME, varlen_mask)
    return NAME
