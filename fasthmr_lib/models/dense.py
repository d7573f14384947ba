"""Dense auxiliary supervision for training a backbone from scratch: per-token body-part classification.

The renderer knows the mesh face behind every pixel, so each crop comes with a ``part_labels`` map
(0 = not the subject, ``1 + part + 24 * back``; ``data_prep.render.face_part_labels``): which SMPL part,
left and right distinct, and whether the pixel shows the front or the back of the body. During training
only, :class:`DenseHead` reads the backbone's output tokens (B, N, C) and predicts, for each token, the
labels of its ``sub x sub`` sub-cells (ViTPose-style sub-token resolution with a linear decoder); the
loss is the cross-entropy to the labels sampled at the sub-cell centres (:func:`dense_targets`).
Per-pixel part targets train networks on synthetic humans from scratch (SURREAL, Varol et al. CVPR 2017);
PARE (Kocabas et al. ICCV 2021) uses part segmentation as an auxiliary task inside an HMR regressor.

The head is never part of :class:`~fasthmr_lib.models.hmr.HMR`: inference, parameter names and the
checkpoint format are HMR2.0's, and the training loop keeps the head in its own state (``train_state``).
It reads the tokens through a forward hook on ``backbone.last_norm`` (:func:`capture_tokens`).

Optionally (``facing=True``) the head also says, for the whole crop, whether the subject is seen from behind:
a linear read-out of the mean of the subject's tokens (:meth:`DenseHead.facing_logit`), trained with a
binary cross-entropy to the GT facing direction (:func:`facing_loss`; ours). The dense front/back bit is a
property of each pixel's surface; this one is the person's, the bit the global orientation's yaw needs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.augment import NUM_PART_LABELS  # 0 = not the subject, 1..24 front of part 0..23, 25..48 back


class DenseHead(nn.Module):
    """Linear decoder from tokens (B, N, C) on a (rows, cols) grid to logits (B, K, rows*sub, cols*sub).

    One ``Linear(C, sub*sub*K)`` per token (no spatial mixing: every token must know its own pixels)."""

    def __init__(
        self,
        dim: int,
        grid: tuple[int, int],
        sub: int = 4,
        num_classes: int = NUM_PART_LABELS,
        facing: bool = False,
    ) -> None:
        super().__init__()
        if sub < 1 or 16 % sub:
            raise ValueError(f"DenseHead: sub must divide the 16-px patch (1, 2, 4, 8, 16), got {sub}")
        self.grid, self.sub, self.num_classes = tuple(grid), int(sub), int(num_classes)
        self.proj = nn.Linear(dim, sub * sub * num_classes)
        # crop-level "seen from behind" read-out (only when asked, so older train states load unchanged)
        self.facing = nn.Linear(dim, 1) if facing else None

    def facing_logit(self, tokens: Tensor, subject: Tensor) -> Tensor:
        """Log-odds (B,) that the subject is seen from behind (|facing angle| >= 90°), read from the mean of
        its tokens. tokens (B, N, C); subject (B, N) bool, the tokens showing the subject (a crop without
        any reads the mean of all its tokens)."""
        if self.facing is None:
            raise ValueError("DenseHead.facing_logit: the head was built without facing=True")
        fg = subject.to(tokens.dtype)[..., None]
        fg = torch.where(fg.sum(1, keepdim=True) > 0, fg, torch.ones_like(fg))
        pooled = (tokens * fg).sum(1) / fg.sum(1)
        return self.facing(pooled).float()[:, 0]

    def forward(self, tokens: Tensor) -> Tensor:
        """tokens (B, rows*cols, C) -> logits (B, K, rows*sub, cols*sub) float."""
        B, N, _ = tokens.shape
        r, c = self.grid
        if N != r * c:
            raise ValueError(f"DenseHead: expected {r * c} tokens (grid {r}x{c}, no merging), got {N}")
        s, K = self.sub, self.num_classes
        x = self.proj(tokens).float().view(B, r, c, s, s, K)
        return x.permute(0, 5, 1, 3, 2, 4).reshape(B, K, r * s, c * s)


def dense_targets(
    part_labels: Tensor,
    grid: tuple[int, int] = (16, 12),
    sub: int = 4,
    *,
    patch: int = 16,
    pad: int = 2,
    trim: int = 32,
) -> Tensor:
    """Labels at the sub-cell centres of the backbone's token grid.

    part_labels (B, S, S) integer map of the whole crop; the backbone sees columns ``trim:S-trim`` and
    token (i, j) covers rows ``patch*i - pad ..`` (HMR2.0's padded patch embedding), so sub-cell k of
    token i is centred on row ``patch*i - pad + (k + 1/2) * patch/sub`` (rounded up; clipped to the
    image). Returns (B, rows*sub, cols*sub) int64."""
    if part_labels.ndim != 3:
        raise ValueError(f"dense_targets: expected (B, S, S) labels, got {tuple(part_labels.shape)}")
    step = patch // sub
    lab = part_labels[:, :, trim : part_labels.shape[2] - trim]
    rows = torch.arange(grid[0] * sub, device=lab.device) * step - pad + step // 2
    cols = torch.arange(grid[1] * sub, device=lab.device) * step - pad + step // 2
    rows = rows.clamp(0, lab.shape[1] - 1)
    cols = cols.clamp(0, lab.shape[2] - 1)
    return lab[:, rows][:, :, cols].long()


def subject_tokens(part_labels: Tensor, grid: tuple[int, int]) -> Tensor:
    """(B, N) bool: the tokens of a (rows, cols) grid whose centre pixel shows the subject (part label > 0).
    part_labels (B, 256, 256) uint8 (:func:`dense_targets` at one cell per token)."""
    return dense_targets(part_labels, grid, 1).flatten(1) > 0


def dense_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """Cross-entropy per sub-cell, summed over the grid's cells / number of cells (a batch mean).
    logits (B, K, h, w), targets (B, h, w) int64 -> scalar."""
    return F.cross_entropy(logits, targets)


def _subject_cells(logits: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
    """Logits (M, K) and labels (M,) of the sub-cells labelled as the subject (label > 0)."""
    fg = targets > 0
    return logits.permute(0, 2, 3, 1)[fg], targets[fg]


def dense_fg_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """Cross-entropy over the subject's sub-cells only (mean over them; 0 when a batch has none).

    The full :func:`dense_loss` is a mean over every cell, and about 85 % of a crop's cells are background,
    which the head learns first: the part and front/back labels then carry little of the gradient
    (measured: after 6,000 steps the front/back bit was at chance, README). logits (B, K, h, w), targets
    (B, h, w) int64 -> scalar."""
    lg, tg = _subject_cells(logits, targets)
    if not len(tg):
        return logits.sum() * 0.0
    return F.cross_entropy(lg, tg)


def front_back_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """Binary cross-entropy of the front/back bit on the subject's sub-cells: the head's log-odds of
    "back" are logsumexp over the 24 back labels minus logsumexp over the 24 front ones (labels
    ``1 + part + 24 * back``). logits (B, K, h, w), targets (B, h, w) int64 -> scalar (0 without subject)."""
    lg, tg = _subject_cells(logits, targets)
    if not len(tg):
        return logits.sum() * 0.0
    half = (lg.shape[1] - 1) // 2
    odds = torch.logsumexp(lg[:, 1 + half :], 1) - torch.logsumexp(lg[:, 1 : 1 + half], 1)
    return F.binary_cross_entropy_with_logits(odds, ((tg - 1) // half).float())


def facing_loss(logit: Tensor, seen_from_behind: Tensor) -> Tensor:
    """Binary cross-entropy of :meth:`DenseHead.facing_logit` (B,) to the GT bit (B,) bool -> scalar."""
    return F.binary_cross_entropy_with_logits(logit, seen_from_behind.float())


@contextmanager
def capture_tokens(model: nn.Module) -> Iterator[dict[str, Tensor]]:
    """Inside the block, ``box["tokens"]`` holds the output of ``model.backbone.last_norm`` (B, N, C) of
    the last forward pass (a forward hook; gradients flow through it). The hook is removed on exit."""
    box: dict[str, Tensor] = {}

    def hook(_m: nn.Module, _inp: tuple, out: Tensor) -> None:
        box["tokens"] = out

    h = model.backbone.last_norm.register_forward_hook(hook)
    try:
        yield box
    finally:
        h.remove()


def part_accuracy(logits: Tensor, targets: Tensor) -> dict[str, float]:
    """Sub-cell accuracies: ``fg`` over cells that show the subject; ``part_lr`` the part (ignoring
    front/back); ``front_back`` whether the front/back bit is right (on cells predicted and labelled as
    subject). logits (B, K, h, w), targets (B, h, w)."""
    return label_accuracy(logits.argmax(1), targets)


def label_accuracy(pred: Tensor, targets: Tensor) -> dict[str, float]:
    """:func:`part_accuracy` from predicted labels (B, h, w) (argmax of the logits) and targets (B, h, w)."""
    fg = targets > 0
    n = max(int(fg.sum()), 1)
    both = fg & (pred > 0)
    return {
        "fg": float((pred[fg] == targets[fg]).sum()) / n,
        "part_lr": float((((pred - 1) % 24) == ((targets - 1) % 24))[fg].sum()) / n,
        "front_back": float((((pred - 1) // 24) == ((targets - 1) // 24))[both].sum())
        / max(int(both.sum()), 1),
    }
