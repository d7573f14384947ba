"""Bipartite soft matching — the token-merging core of ToMe (Bolya et al., "Token Merging: Your ViT
but Faster", ICLR 2023, §3), written from the paper's description. No model knowledge.

One merge step on N tokens:

1. split the tokens into A = even indices and B = odd indices;
2. similarity = cosine of the per-token metric (the attention keys averaged over heads);
3. each A token is matched to its most similar B token (one edge per A token);
4. the r most similar edges are merged: the A token is averaged into its B partner.

Output order (as ToMe): ``[unmerged A tokens ..., all B tokens ...]``, N − r tokens.
Protected tokens (person tokens for Mask-ToMe, class tokens) get similarity −∞ as A rows and as B
columns (FastHMR Fig. 3), so they are merged only when r exceeds the mergeable pairs — then the
remaining merges are *forced* (the paper's crowded-crop failure case) and counted.

The step is built once per layer (:func:`bipartite_soft_matching`) and the returned ``merge`` /
``unmerge`` functions are applied to features, sizes, masks and source maps alike.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

MergeFn = Callable[..., Tensor]

__all__ = [
    "bipartite_soft_matching",
    "mergeable_pairs",
    "merge_wavg",
    "merge_source",
    "initial_source",
    "restore_tokens",
]


def _identity(x: Tensor, mode: str = "mean") -> Tensor:
    return x


def mergeable_pairs(protected: Tensor | None, n_tokens: int, batch: int = 1) -> Tensor:
    """How many A→B merges are possible without touching a protected token, per sample.

    protected: (B, N) bool or ``None``. Returns (B,) long: the number of unprotected A tokens when at
    least one unprotected B token exists, else 0 (merges per step are also capped at ⌊N/2⌋)."""
    if protected is None:
        return torch.full((batch,), n_tokens // 2, dtype=torch.long)
    free_a = (~protected[:, ::2]).sum(-1)
    free_b = (~protected[:, 1::2]).sum(-1)
    return torch.where(free_b > 0, free_a, torch.zeros_like(free_a))


def bipartite_soft_matching(
    metric: Tensor, r: int, protected: Tensor | None = None, prefix: int = 0
) -> tuple[MergeFn, MergeFn, Tensor]:
    """Build one ToMe merge step.

    Args:
        metric: (B, N, C) similarity features (ToMe: keys averaged over heads).
        r: pairs to merge (clamped to ⌊N/2⌋); the same for every sample of the batch.
        protected: (B, N) bool, tokens that must not be merged (−∞ similarity as A row and B column).
        prefix: leading special tokens (timm's class / distillation / register tokens; they must be
            ``protected`` too). As ToMe's ``class_token`` / ``distill_token``: r ≤ ⌊(N − prefix)/2⌋, the
            kept A tokens stay in their original order, and the prefix tokens come out first, in order
            (ToMe, tome/merge.py), so a model's pooling still finds its class token at index 0.

    Returns:
        ``merge(x (B,N,C), mode="mean") -> (B,N−r,C)`` (``mode`` as ``Tensor.scatter_reduce``:
        "mean", "sum", "amax"), ``unmerge(x (B,N−r,C)) -> (B,N,C)`` (each original slot gets the value
        of the token it went into), and ``forced`` (B,) long — protected tokens merged per sample
        because r exceeded the mergeable pairs.
    """
    B, N, _ = metric.shape
    r = min(int(r), (N - prefix) // 2)
    if r <= 0:
        return _identity, _identity, torch.zeros(B, dtype=torch.long, device=metric.device)

    with torch.no_grad():
        m = metric / metric.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        a, b = m[:, ::2], m[:, 1::2]
        raw = a @ b.transpose(-1, -2)  # (B, Na, Nb) cosine similarity
        if protected is not None:
            pa, pb = protected[:, ::2], protected[:, 1::2]
            scores = raw.masked_fill(pa[..., None], -torch.inf).masked_fill(pb[:, None, :], -torch.inf)
        else:
            pa = pb = None
            scores = raw
        node_max, node_idx = scores.max(dim=-1)  # best B partner of every A token
        if protected is not None:
            # rows with no allowed partner: ranked after every allowed edge, matched by raw similarity
            blocked = torch.isinf(node_max)
            raw_max, raw_idx = raw.max(dim=-1)
            node_max = torch.where(blocked, raw_max - 4.0, node_max)  # cosine ∈ [-1, 1]
            node_idx = torch.where(blocked, raw_idx, node_idx)
        edge_idx = node_max.argsort(dim=-1, descending=True)[..., None]  # (B, Na, 1)
        unm_idx = edge_idx[:, r:]  # A tokens kept
        if prefix:
            unm_idx = unm_idx.sort(dim=1)[0]  # ToMe with a class token: kept A tokens in order
        src_idx = edge_idx[:, :r]  # A tokens merged away
        dst_idx = node_idx[..., None].gather(1, src_idx)  # their B partners
        if protected is not None:
            src_prot = pa.gather(1, src_idx[..., 0])
            dst_prot = pb.gather(1, dst_idx[..., 0])
            forced = (src_prot | dst_prot).sum(-1)
        else:
            forced = torch.zeros(B, dtype=torch.long, device=metric.device)
    n_unm = unm_idx.shape[1]
    perm = _prefix_first(prefix, n_unm, N - r, metric.device)

    def merge(x: Tensor, mode: str = "mean") -> Tensor:
        src, dst = x[:, ::2], x[:, 1::2]
        n, _, c = src.shape
        unm = src.gather(1, unm_idx.expand(n, n_unm, c))
        src = src.gather(1, src_idx.expand(n, r, c))
        dst = dst.scatter_reduce(1, dst_idx.expand(n, r, c), src, reduce=mode)
        out = torch.cat([unm, dst], dim=1)
        return out if perm is None else out[:, perm]

    def unmerge(x: Tensor) -> Tensor:
        if perm is not None:
            x = x[:, perm.argsort()]
        unm, dst = x[:, :n_unm], x[:, n_unm:]
        n, _, c = x.shape
        src = dst.gather(1, dst_idx.expand(n, r, c))
        out = torch.zeros(n, N, c, device=x.device, dtype=x.dtype)
        out[:, 1::2] = dst
        out.scatter_(1, (2 * unm_idx).expand(n, n_unm, c), unm)
        out.scatter_(1, (2 * src_idx).expand(n, r, c), src)
        return out

    return merge, unmerge, forced


def _prefix_first(prefix: int, n_unm: int, n_out: int, device: torch.device) -> Tensor | None:
    """Order of ``[unmerged A ..., B ...]`` that puts the ``prefix`` tokens first in their original order
    (token i is A[i/2] for even i, B[i/2] for odd i; kept A tokens are sorted, so A's prefix tokens lead
    ``unm``). ``None`` when that is the identity (prefix ≤ 1: ToMe's class-token case)."""
    if prefix <= 1:
        return None
    head = [i // 2 if i % 2 == 0 else n_unm + i // 2 for i in range(prefix)]
    na, nb = (prefix + 1) // 2, prefix // 2
    tail = list(range(na, n_unm)) + list(range(n_unm + nb, n_out))
    return torch.tensor(head + tail, device=device)


def merge_wavg(merge: MergeFn, x: Tensor, size: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Size-weighted average merge (ToMe §3): x (B,N,C), size (B,N,1) patches per token (``None``:
    ones) -> (x' (B,N',C), size' (B,N',1)). Sizes are summed, so they always total the original N."""
    if size is None:
        size = torch.ones_like(x[..., :1])
    x = merge(x * size, mode="sum")
    size = merge(size, mode="sum")
    return x / size, size


def initial_source(batch: int, n_tokens: int, device: torch.device | str | None = None) -> Tensor:
    """(B, N, N) identity source map: token i holds original patch i."""
    return torch.eye(n_tokens, device=device)[None].expand(batch, n_tokens, n_tokens).clone()


def merge_source(merge: MergeFn, source: Tensor) -> Tensor:
    """Follow the merge in the source map (B,N,N0) 0/1 -> (B,N',N0): a token owns the union of its parts."""
    return merge(source, mode="amax")


def restore_tokens(values: Tensor, source: Tensor) -> Tensor:
    """Put per-token values back on the original token positions.

    values (B, N', C) for the current tokens, source (B, N', N0) 0/1 -> (B, N0, C): every original
    patch receives the value of the merged token that contains it."""
    if source.shape[:2] != values.shape[:2]:
        v, src = tuple(values.shape), tuple(source.shape)
        raise ValueError(f"restore_tokens: values {v} do not match source {src}")
    return source.transpose(1, 2).to(values.dtype) @ values
