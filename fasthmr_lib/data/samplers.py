"""Deterministic, resumable batch samplers for the training loop (items are ``(index, epoch)`` pairs of
:class:`~fasthmr_lib.data.crop_cache.AugmentedCrops`).

Each step's batch is a pure function of ``(seed, step)``, so a run resumed at any step draws the same
batches as an uninterrupted one, independent of the number of data-loader workers.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Sampler


class StepBatchSampler(Sampler):
    """Batches for steps ``start .. total-1``: sample position ``p = step*B + j`` -> epoch ``p // N``,
    index ``perm_epoch[p % N]`` with ``perm_epoch = randperm(N, seed + epoch)``. Yields lists of
    ``(index, epoch)``; deterministic and resumable at any step."""

    def __init__(self, n: int, batch: int, seed: int, start: int, total: int):
        self.n, self.batch, self.seed, self.start, self.total = n, batch, seed, start, total
        self._perms: dict[int, Tensor] = {}

    def _perm(self, epoch: int) -> Tensor:
        if epoch not in self._perms:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perms = {epoch: torch.randperm(self.n, generator=g)}
        return self._perms[epoch]

    def __len__(self) -> int:
        return max(0, self.total - self.start)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for step in range(self.start, self.total):
            out = []
            for p in range(step * self.batch, (step + 1) * self.batch):
                e = p // self.n
                out.append((int(self._perm(e)[p % self.n]), e))
            yield out


class FacingBatchSampler(Sampler):
    """Batches for steps ``start .. total-1`` drawn with replacement, with weight
    ``exp(kappa_t (cos phi - 1))`` per crop (a von Mises density of the facing angle phi around facing
    the camera); ``kappa_t`` decays linearly from ``kappa`` to 0 (uniform) over ``curriculum_steps``
    (0 = constant). Step ``t``'s draw is a pure function of ``(seed, t)``, so it resumes at any step;
    items are ``(index, t)`` (the step is the augmentation 'epoch')."""

    def __init__(
        self,
        cos_phi: Tensor,
        batch: int,
        seed: int,
        start: int,
        total: int,
        kappa: float,
        curriculum_steps: int,
    ):
        self.cos = cos_phi.double()
        self.batch, self.seed, self.start, self.total = batch, seed, start, total
        self.kappa, self.curriculum = float(kappa), int(curriculum_steps)

    def kappa_at(self, step: int) -> float:
        if self.curriculum <= 0:
            return self.kappa
        return self.kappa * max(0.0, 1.0 - step / self.curriculum)

    def weights_at(self, step: int) -> Tensor:
        return torch.exp(self.kappa_at(step) * (self.cos - 1.0))

    def __len__(self) -> int:
        return max(0, self.total - self.start)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for step in range(self.start, self.total):
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + step + 17)
            idx = torch.multinomial(self.weights_at(step), self.batch, replacement=True, generator=g)
            yield [(int(i), step) for i in idx]


def worker_init(worker_id: int) -> None:
    """``DataLoader(worker_init_fn=...)``: seed numpy's and Python's global RNGs of a worker from torch's."""
    # augmentation draws from per-sample generators; seed the rest anyway for library code in workers
    s = torch.initial_seed() % 2**32
    np.random.seed(s)  # noqa: NPY002 (legacy global RNG of library code)
    random.seed(s)


class RankSlice(Sampler):
    """This rank's part of every batch of a batch sampler: the global batch of ``batch_size`` items,
    drawn exactly as in one process, then items ``[rank*b, (rank+1)*b)`` with ``b = batch_size /
    world`` (``world`` must divide it). Which item a rank gets therefore depends only on (seed, step,
    global position), never on the rank's own RNG, and resumption at any step stays exact."""

    def __init__(self, batches: Sampler, batch_size: int, rank: int, world: int):
        if world < 1 or not 0 <= rank < world:
            raise ValueError(f"RankSlice: need 0 <= rank < world, got rank={rank}, world={world}")
        if batch_size % world:
            raise ValueError(
                f"batch={batch_size} is the global batch: it must be divisible by the world size {world}"
            )
        b = batch_size // world
        self.batches, self.lo, self.hi = batches, rank * b, (rank + 1) * b

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for batch in self.batches:
            yield batch[self.lo : self.hi]
