"""Multiply-accumulate counting of any ``nn.Module`` forward (``torch.utils.flop_counter``).

MAC conventions (``torch.utils.flop_counter.FlopCounterMode``; 1 MAC = 2 FLOPs):

* ``linear_conv``: only ``aten.mm`` / ``aten.addmm`` / ``aten.convolution`` (the nn.Linear and
  nn.Conv2d layers). This is the convention that reproduces the paper's Table 12 (HMR2.0: 122.6 G,
  with 28 blocks 107.5 G): per ViT-H block 12·d²·N MACs (qkv 3d², proj d², MLP 8d²) at N = 192,
  d = 1280, plus the patch conv and the head's linears (its cross-attention ``to_kv`` over the
  backbone tokens dominates the head). Attention score/value matmuls are *not* counted.
* ``all``: every op the counter knows, plus scaled-dot-product attention (the CPU flash kernel
  ``_scaled_dot_product_flash_attention_for_cpu`` is registered here with torch's own SDPA formula).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

LINEAR_CONV_OPS = ("aten.mm", "aten.addmm", "aten.convolution", "aten._convolution", "aten.addmv", "aten.mv")


def _sdpa_cpu_flop(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


_CUSTOM = {}
if hasattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu"):
    _CUSTOM[torch.ops.aten._scaled_dot_product_flash_attention_for_cpu] = _sdpa_cpu_flop


@dataclass
class MacCount:
    """MACs for one forward pass, per image. ``by_component[name] = {"all": .., "linear_conv": ..}``."""

    all: float
    linear_conv: float
    by_component: dict[str, dict[str, float]] = field(default_factory=dict)
    by_op: dict[str, float] = field(default_factory=dict)
    batch: int = 1
    output: Any = None  # what the counted forward returned (e.g. to read ``tokens_per_block``)


def _split(op_counts: dict[Any, int]) -> tuple[float, float]:
    tot = sum(op_counts.values())
    lc = sum(c for op, c in op_counts.items() if str(op) in LINEAR_CONV_OPS)
    return tot / 2.0, lc / 2.0


def count_macs(model: nn.Module, *inputs: Any, **kwargs: Any) -> MacCount:
    """Run ``model(*inputs, **kwargs)`` once under ``FlopCounterMode`` (no grad) and return MACs per
    image (batch = ``inputs[0].shape[0]``) in both conventions, per top-level child module."""
    batch = int(inputs[0].shape[0])
    with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=_CUSTOM) as fc:
        output = model(*inputs, **kwargs)
    counts = fc.get_flop_counts()
    glob = counts.get("Global", {})
    all_, lc = _split(glob)
    root = type(model).__name__
    keys = set(counts)
    by_comp: dict[str, dict[str, float]] = {}
    for name, _ in model.named_children():
        pref = f"{root}.{name}"
        if pref in keys:
            picked = [pref]
        else:  # child not called through __call__ (e.g. backbone.forward_tokens): sum its outermost
            picked = [
                k
                for k in keys
                if k.startswith(pref + ".")
                and not any(k.startswith(a + ".") for a in keys if a.startswith(pref + ".") and a != k)
            ]
        if not picked:
            continue
        ops: dict[Any, int] = {}
        for k in picked:
            for op, c in counts[k].items():
                ops[op] = ops.get(op, 0) + c
        a, l_ = _split(ops)
        by_comp[name] = {"all": a / batch, "linear_conv": l_ / batch}
    by_op = {str(op): c / 2.0 / batch for op, c in glob.items()}
    return MacCount(all_ / batch, lc / batch, by_comp, by_op, batch, output)
