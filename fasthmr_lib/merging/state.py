"""Per-forward token bookkeeping shared by the backbone blocks and the token-merging code.

Kept free of model knowledge: the ViT only carries it through its blocks; merging functions
(``merging.tokens`` / ``merging.mask_tome``) read and update it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor


@dataclass
class TokenState:
    """What a merge step needs to know about the current token set.

    Attributes:
        size: (B, N, 1) float, how many original patches each current token stands for
            (``None`` = all ones, i.e. nothing merged yet).
        protected: (B, N) bool, tokens that must never be merged (person tokens, class tokens).
        source: (B, N, N0) float 0/1, which original patch ended in which current token
            (``None`` unless source tracking is on).
        prop_attn: add log(size) to attention logits (ToMe proportional attention).
        prefix_tokens: leading class / distillation / register tokens (timm ViTs), kept first in order.
        tokens_per_block: token count entering each block's MLP, appended as the forward runs.
        forced_person_merges: per block, how many protected tokens had to be merged because the
            budget exceeded the mergeable background (the paper's crowded-crop case).
    """

    size: Tensor | None = None
    protected: Tensor | None = None
    source: Tensor | None = None
    prop_attn: bool = False
    prefix_tokens: int = 0
    tokens_per_block: list[int] = field(default_factory=list)
    forced_person_merges: list[int] = field(default_factory=list)

    def log_size(self) -> Tensor | None:
        """(B, 1, 1, N) additive attention bias log(size), or ``None`` when not needed."""
        if not self.prop_attn or self.size is None:
            return None
        return torch.log(self.size)[:, None, None, :, 0]
