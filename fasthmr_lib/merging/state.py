"""Per-forward token bookkeeping: everything one forward pass of a merging backbone needs.

One :class:`TokenState` is built per forward (by ``HMR.token_state`` from the model's
``token_merging`` config, or by the timm adapter in ``merging.patch``), handed to every ViT block,
and updated in place by the merge step (:func:`fasthmr_lib.merging.mask_tome.block_step`). Kept free
of model knowledge: the ViT only carries it through its blocks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:  # the config lives with the merge step; only its type is needed here
    from .mask_tome import MaskToMeConfig


@dataclass
class TokenState:
    """What a merge step needs to know about the current token set.

    Attributes:
        merging: the merge schedule (:class:`~fasthmr_lib.merging.mask_tome.MaskToMeConfig`); ``None``
            = carry tokens through unchanged (only the counts below are recorded).
        size: (B, N, 1) float, how many original patches each current token stands for
            (``None`` = all ones, i.e. nothing merged yet).
        protected: (B, N) bool, tokens that must never be merged (person tokens, class tokens).
        source: (B, N, N0) float 0/1, which original patch ended in which current token
            (``None`` unless source tracking is on).
        prefix_tokens: leading class / distillation / register tokens (timm ViTs), kept first in order.
        tokens_per_block: token count entering each block's MLP, appended as the forward runs.
        forced_person_merges: per block, how many protected tokens had to be merged because the
            budget exceeded the mergeable background (the paper's crowded-crop case).
        history: ``None``, or a list that receives ``(size, source)`` after every block (merge traces).
    """

    merging: MaskToMeConfig | None = None
    size: Tensor | None = None
    protected: Tensor | None = None
    source: Tensor | None = None
    prefix_tokens: int = 0
    tokens_per_block: list[int] = field(default_factory=list)
    forced_person_merges: list[int] = field(default_factory=list)
    history: list[tuple[Tensor | None, Tensor | None]] | None = None

    @property
    def block(self) -> int:
        """Index of the block the forward is in (blocks record their token count on leaving)."""
        return len(self.tokens_per_block)

    def size_bias(self) -> Tensor | None:
        """(B, 1, 1, N) additive attention bias log(size) (ToMe proportional attention), ``None``
        while nothing is merged."""
        if self.size is None:
            return None
        return torch.log(self.size)[:, None, None, :, 0]

    def log_size(self) -> Tensor | None:
        """The self-attention bias: :meth:`size_bias` when the config asks for ToMe proportional
        attention (``merging.prop_attn``), else ``None``."""
        return self.size_bias() if self.merging is not None and self.merging.prop_attn else None

    def head_bias(self) -> Tensor | None:
        """The SMPL head's cross-attention bias: :meth:`size_bias` when the config asks for it."""
        return self.size_bias() if self.merging is not None and self.merging.head_size_bias else None
