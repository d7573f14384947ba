"""The distributed state of a training run (PyTorch DDP under ``torchrun``): one small place.

``torchrun --nproc_per_node N -m fasthmr_lib.train ...`` starts N processes with ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` in their environment;
:func:`init_from_env` joins them into one process group (nccl on cuda, gloo on cpu) and the library's
training loops read :func:`current` (rank, world size). Without those variables (a plain ``python``
run) nothing is initialised and :data:`SINGLE` (rank 0 of 1) makes every helper here a no-op, so a
single-process run computes exactly what it did before DDP existed.

The conventions the loops follow: a global batch of B samples is drawn as before (a pure function of
seed, step and global sample index) and rank r trains on its slice ``[r*B/W, (r+1)*B/W)``
(:meth:`DistState.batch_slice`); DDP averages the gradients, which equals the 1-process gradient when
the loss is a per-sample mean; logged losses are all-reduced means (:meth:`DistState.mean`); files are
written by rank 0 only (:attr:`DistState.is_main`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as tdist
from torch import Tensor, nn


@dataclass(frozen=True)
class DistState:
    """Rank and world size of this process (``world == 1``: a plain single-process run)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        """More than one process: gradients, losses and objects are exchanged."""
        return self.world > 1

    @property
    def is_main(self) -> bool:
        """Rank 0, the process that writes checkpoints, histories and logs."""
        return self.rank == 0

    def batch_slice(self, batch: int, what: str = "batch") -> slice:
        """This rank's slice of a global batch of ``batch`` samples (``slice(0, batch)`` single-process);
        raises when ``batch`` is not divisible by the world size (``what`` names the parameter)."""
        if batch % self.world:
            raise ValueError(
                f"{what}={batch} is the global batch: it must be divisible by the world size "
                f"{self.world} (each process takes {what} / world samples)"
            )
        b = batch // self.world
        return slice(self.rank * b, (self.rank + 1) * b)

    def mean(self, values: dict[str, Tensor]) -> dict[str, Tensor]:
        """All-reduced means over the ranks of scalar tensors (one exchange); ``values`` itself when
        single-process (bit-identical)."""
        if not self.active or not values:
            return values
        keys = list(values)
        flat = torch.stack([values[k].detach().float().reshape(()) for k in keys])
        tdist.all_reduce(flat, op=tdist.ReduceOp.SUM)
        flat /= self.world
        return {k: flat[i] for i, k in enumerate(keys)}

    def barrier(self) -> None:
        """Wait for every rank (no-op single-process)."""
        if self.active:
            tdist.barrier()

    def all_gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj`` (picklable), in rank order; ``[obj]`` single-process."""
        if not self.active:
            return [obj]
        out: list[Any] = [None] * self.world
        tdist.all_gather_object(out, obj)
        return out


SINGLE = DistState()


def current() -> DistState:
    """The state of the initialised default process group, or :data:`SINGLE` when there is none."""
    if not (tdist.is_available() and tdist.is_initialized()):
        return SINGLE
    return DistState(
        tdist.get_rank(), tdist.get_world_size(), int(os.environ.get("LOCAL_RANK", tdist.get_rank()))
    )


def init_from_env(device: str = "cpu") -> DistState:
    """Join the process group that ``torchrun`` describes in the environment (``WORLD_SIZE`` > 1;
    backend nccl for a cuda ``device``, gloo otherwise) and return its state; :data:`SINGLE` (nothing
    initialised) without those variables. Idempotent: an initialised group is reused."""
    if tdist.is_available() and tdist.is_initialized():
        return current()
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return SINGLE
    for var in ("RANK", "MASTER_ADDR", "MASTER_PORT"):
        if var not in os.environ:
            raise RuntimeError(f"WORLD_SIZE={world} but ${var} is unset: launch with torchrun")
    cuda = torch.device(device).type == "cuda"
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    tdist.init_process_group("nccl" if cuda else "gloo")
    return current()


def shutdown() -> None:
    """Leave the process group, if one was initialised."""
    if tdist.is_available() and tdist.is_initialized():
        tdist.destroy_process_group()


def local_device(device: str | torch.device, state: DistState) -> torch.device:
    """``device`` of this rank: a bare ``cuda`` becomes ``cuda:<LOCAL_RANK>`` under DDP (one GPU per
    process); anything else is returned as is."""
    dev = torch.device(device)
    if state.active and dev.type == "cuda" and dev.index is None:
        return torch.device("cuda", state.local_rank)
    return dev


@contextmanager
def rank_zero_first(state: DistState) -> Iterator[None]:
    """Rank 0 runs the block first (e.g. building a cache file), the others after it finished (then
    they find the file): no two processes write the same file. No-op single-process."""
    if not state.is_main:
        state.barrier()
    yield
    if state.is_main:
        state.barrier()


def wrap(module: nn.Module, state: DistState, device: torch.device) -> nn.Module:
    """``module`` in :class:`~torch.nn.parallel.DistributedDataParallel` under DDP (parameters
    broadcast from rank 0, gradients averaged in backward), ``module`` itself single-process.

    BatchNorm (the optional conv stem): on cuda it becomes SyncBatchNorm, so the statistics are the
    global batch's, as in one process; gloo/cpu has no SyncBatchNorm, so there each rank normalises
    with the statistics of its own B/W samples and the run is not numerically a 1-process one.
    Buffers are synchronised once at construction, not every forward (``forward_sync_buffers=False``:
    the body model's large constant buffers would travel each step), so on cpu with BatchNorm the
    running statistics are rank 0's own."""
    if not state.active:
        return module
    if device.type == "cuda":
        module = nn.SyncBatchNorm.convert_sync_batchnorm(module)
        return nn.parallel.DistributedDataParallel(
            module, device_ids=[device.index], forward_sync_buffers=False
        )
    return nn.parallel.DistributedDataParallel(module, forward_sync_buffers=False)


def shard_indices(n: int, state: DistState) -> range:
    """This rank's items of an ``n``-item dataset for a pass that is not training (feature extraction):
    ``rank, rank + W, ...`` (all items single-process)."""
    return range(state.rank, n, state.world)


def decorrelate(state: DistState, seed: int) -> None:
    """Under DDP: reseed this rank's global torch RNG from (``seed``, rank), so the dropout/drop-path
    masks of different ranks differ (they would repeat otherwise: every rank starts from the same
    seed). No-op single-process. Data draws never come from this stream (they depend on seed, step and
    global sample index only)."""
    if state.active:
        torch.manual_seed((int(seed) * 1_000_003 + 7_919 * (state.rank + 1)) % (2**63 - 1))
