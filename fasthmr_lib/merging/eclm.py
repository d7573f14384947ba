"""ECLM — Error-Constrained Layer Merging (FastHMR, arXiv 2510.10868, §3.2, Eq. 4, Algorithm 1).

A window of consecutive backbone blocks ``[lo, hi]`` is replaced by **one** block at position ``lo``
whose parameters follow a named *rule* (:data:`RULES`); the depth shrinks by ``hi - lo``. The windows
are chosen by :func:`search`, a literal transcription of the paper's Algorithm 1 (greedy, top-down
sliding window, accept while ``MPJPE - base < tau``).

Window indices always refer to the **original** block numbering: Algorithm 1 only commits windows
below every earlier one, so earlier commits never shift the indices of later candidates, and
:func:`apply_windows` rebuilds any merged model from the original weights and a window list.

Selection data: the paper selects on the EMDB *test* set (80 frames per clip); here the evaluator is
any callable ``model -> MPJPE (mm)`` and :func:`check_selection_split` refuses the test split unless
explicitly allowed (see :func:`sample_per_clip` for the paper's sampler).

Composition with token merging: run ``fasthmr_lib.merging.patch.apply(model, cfg)`` **before**
:func:`search` to select layers with Mask-ToMe active; every candidate is a ``copy.deepcopy`` of the
patched model, so its ``token_merging`` setting survives and the merge schedule runs on the merged
model's block positions. The evaluator receives the model exactly as built (it must pass person masks
when the setting needs them).
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..io import atomic_path, read_json, write_json

RULES = ("paper", "slm_code", "mean", "drop")
# The linear weights the SLM/LaCo code touches (their LLaMA q/k/v/o, gate/up/down), mapped onto the
# HMR2.0 ViT block (fused qkv, proj, fc1, fc2). Biases and LayerNorms are not touched by that code.
LINEAR_WEIGHTS = ("attn.qkv.weight", "attn.proj.weight", "mlp.fc1.weight", "mlp.fc2.weight")
WINDOWS_FORMAT = "fasthmr-eclm-windows"

Window = tuple[int, int]


# --------------------------------------------------------------------------- pure tensor core
def _check_rule(rule: str) -> None:
    if rule not in RULES:
        raise ValueError(f"unknown merge rule {rule!r}; expected one of {RULES}")


def merge_state_dicts(states: Sequence[Mapping[str, Tensor]], rule: str) -> dict[str, Tensor]:
    """Merge the parameter dicts θ_lo..θ_hi of a window of ``n >= 2`` blocks into one dict.

    Rules (for a 2-block window [i, i+1] in brackets):

    * ``paper`` — Eq. 4, θ* = θ_lo + Σ_{k=1}^{n-1} (θ_{lo+k} − θ_lo) with θ_lo held fixed, applied to
      **every** tensor (LayerNorms and biases too). [2 blocks: θ* = θ_{i+1}, identical to ``drop``;
      3 blocks: θ_{i+1} + θ_{i+2} − θ_i.]
    * ``slm_code`` — what the SLM / LaCo reference code computes (``merge_layers_return_model``): an
      in-place loop ``W_lo += W_k − W_lo(current)`` over the window on the linear **weights only**
      (:data:`LINEAR_WEIGHTS`); biases and norms stay block ``lo``'s. The loop ends at the last block's
      linear weights. [2 blocks: block i's norms and biases with block i+1's linear weights.]
    * ``mean`` — element-wise average of all n blocks. [2 blocks: (θ_i + θ_{i+1}) / 2.]
    * ``drop`` — keep the last block θ_hi only (blocks lo..hi−1 deleted). [2 blocks: θ_{i+1}.]
    """
    _check_rule(rule)
    if len(states) < 2:
        raise ValueError(f"a merge window needs at least 2 blocks, got {len(states)}")
    keys = list(states[0].keys())
    for n, s in enumerate(states[1:], 1):
        if list(s.keys()) != keys:
            raise ValueError(f"block {n} of the window has different parameter names than block 0")
    out: dict[str, Tensor] = {}
    for k in keys:
        ts = [s[k].detach() for s in states]
        if not ts[0].is_floating_point():  # integer buffers (none in the ViT): keep the base's
            out[k] = ts[0].clone()
            continue
        base = ts[0]
        if rule == "paper":
            acc = base.clone()
            for t in ts[1:]:
                acc = acc + (t - base)  # θ_lo fixed (Eq. 4)
            out[k] = acc
        elif rule == "slm_code":
            cur = base.clone()
            if k in LINEAR_WEIGHTS:
                for t in ts:  # SLM loops low..high and updates the base copy in place
                    cur.add_(t - cur)
            out[k] = cur
        elif rule == "mean":
            out[k] = torch.stack(ts).mean(0)
        else:  # drop
            out[k] = ts[-1].clone()
    return out


def validate_windows(windows: Sequence[Sequence[int]], depth: int) -> list[Window]:
    """Windows as sorted (descending) ``(lo, hi)`` int tuples; checks ``0 <= lo < hi < depth`` and no
    overlap. Raises ``ValueError`` naming the bad window."""
    ws: list[Window] = []
    for w in windows:
        if len(w) != 2:
            raise ValueError(f"window {w!r}: expected (lo, hi)")
        lo, hi = int(w[0]), int(w[1])
        if not 0 <= lo < hi < depth:
            raise ValueError(f"window {w!r}: expected 0 <= lo < hi < depth={depth}")
        ws.append((lo, hi))
    ws.sort(reverse=True)
    for (lo_a, _), (_, hi_b) in zip(ws, ws[1:]):
        if hi_b >= lo_a:
            raise ValueError(f"windows overlap: {ws}")
    return ws


def depth_after(depth: int, windows: Sequence[Window]) -> int:
    """Blocks left after merging ``windows`` (each removes ``hi - lo`` blocks)."""
    return depth - sum(hi - lo for lo, hi in windows)


def kept_blocks(depth: int, windows: Sequence[Window]) -> list[list[int]]:
    """For each block of the merged model, the original block indices it stands for."""
    ws = {lo: hi for lo, hi in windows}
    out, i = [], 0
    while i < depth:
        hi = ws.get(i, i)
        out.append(list(range(i, hi + 1)))
        i = hi + 1
    return out


# --------------------------------------------------------------------------- model adapters
def get_blocks(model: nn.Module) -> nn.ModuleList:
    """``model.backbone.blocks`` (HMR) or ``model.blocks`` (ViT / timm VisionTransformer)."""
    owner = _block_owner(model)
    return owner.blocks


def _block_owner(model: nn.Module) -> nn.Module:
    bb = getattr(model, "backbone", None)
    if bb is not None and isinstance(getattr(bb, "blocks", None), nn.ModuleList):
        return bb
    if isinstance(getattr(model, "blocks", None), nn.ModuleList):
        return model
    raise TypeError(
        f"{type(model).__name__}: expected a model with `.backbone.blocks` (HMR) or `.blocks` (ViT) "
        "as an nn.ModuleList"
    )


def merge_blocks(blocks: Sequence[nn.Module], rule: str) -> nn.Module:
    """One new block replacing ``blocks`` (consecutive, same structure) under ``rule``.

    The new block is a deepcopy of ``blocks[0]`` (so it keeps block lo's class, e.g. a patched timm
    block, and drop-path setting) with the merged parameters of :func:`merge_state_dicts`; the inputs are not
    modified."""
    blocks = list(blocks)
    merged = merge_state_dicts([b.state_dict() for b in blocks], rule)
    new = copy.deepcopy(blocks[0])
    with torch.no_grad():
        new.load_state_dict(merged, strict=True)
    return new


def apply_windows(model: nn.Module, windows: Sequence[Sequence[int]], rule: str = "paper") -> nn.Module:
    """A **new** model (``copy.deepcopy``; ``model`` untouched) whose blocks in each window ``(lo, hi)``
    (original indices) are merged into one block under ``rule``. Same device / dtype / train mode as
    ``model``; its ``token_merging`` setting is carried over."""
    _check_rule(rule)
    src = get_blocks(model)
    ws = validate_windows(windows, len(src))
    new = copy.deepcopy(model)
    owner = _block_owner(new)
    new_blocks: list[nn.Module] = []
    for group in kept_blocks(len(src), ws):
        if len(group) == 1:
            new_blocks.append(owner.blocks[group[0]])
        else:
            new_blocks.append(merge_blocks([src[i] for i in group], rule))
    owner.blocks = nn.ModuleList(new_blocks)
    new.eclm_windows = [list(w) for w in sorted(ws)]
    new.eclm_rule = rule
    return new


# --------------------------------------------------------------------------- windows on disk
@dataclass
class MergePlan:
    """What a merged model is: ``windows`` (original indices) merged under ``rule`` in a model of
    ``depth`` blocks."""

    windows: list[Window]
    rule: str
    depth: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def apply(self, model: nn.Module) -> nn.Module:
        d = len(get_blocks(model))
        if self.depth is not None and d != self.depth:
            raise ValueError(f"merge plan was made for a {self.depth}-block model, got {d} blocks")
        return apply_windows(model, self.windows, self.rule)


def save_windows(
    path: str | Path,
    windows: Sequence[Sequence[int]],
    rule: str,
    *,
    depth: int | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Path:
    """Write the window list as JSON (atomic): ``{"format", "version", "rule", "depth", "windows",
    "metadata"}``. Reload with :func:`load_windows` and rebuild with ``plan.apply(original_model)``."""
    _check_rule(rule)
    ws = validate_windows(windows, depth if depth is not None else 10**9)
    doc = {
        "format": WINDOWS_FORMAT,
        "version": 1,
        "rule": rule,
        "depth": depth,
        "depth_after": depth_after(depth, ws) if depth is not None else None,
        "windows": [list(w) for w in sorted(ws)],
        "metadata": dict(metadata or {}),
    }
    return write_json(path, doc)


def load_windows(path: str | Path) -> MergePlan:
    """Inverse of :func:`save_windows`."""
    doc = read_json(path)
    if not isinstance(doc, dict) or doc.get("format") != WINDOWS_FORMAT:
        raise ValueError(f"{path}: not an ECLM windows file (format != {WINDOWS_FORMAT!r})")
    try:
        ws = [(int(a), int(b)) for a, b in doc["windows"]]
        rule = str(doc["rule"])
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{path}: bad 'windows'/'rule' entry ({e})") from e
    if rule not in RULES:
        raise ValueError(f"{path}: unknown rule {rule!r}; expected one of {RULES}")
    depth = doc.get("depth")
    return MergePlan(ws, rule, int(depth) if depth is not None else None, dict(doc.get("metadata") or {}))


# --------------------------------------------------------------------------- Algorithm 1
@dataclass
class ECLMResult:
    """Outcome of :func:`search`.

    windows: committed windows (original indices) in commit order (top-down); base_mpjpe / final_mpjpe:
    selection-split MPJPE (mm) of the original and of the merged model; log: one row per candidate;
    pending_window: the accepted-but-uncommitted window at the end of the loop (only with
    ``commit_pending=False``, the pseudo-code's literal behaviour), else ``None``."""

    windows: list[Window]
    base_mpjpe: float
    final_mpjpe: float
    log: pd.DataFrame
    rule: str = "paper"
    tau_mm: float = 0.0
    depth_before: int = 0
    depth_after: int = 0
    pending_window: Window | None = None
    wall_s: float = 0.0

    def plan(self) -> MergePlan:
        return MergePlan(list(self.windows), self.rule, self.depth_before, {"tau_mm": self.tau_mm})

    def apply(self, model: nn.Module) -> nn.Module:
        return self.plan().apply(model)

    def save(self, path: str | Path) -> Path:
        meta = {
            "tau_mm": self.tau_mm,
            "base_mpjpe": self.base_mpjpe,
            "final_mpjpe": self.final_mpjpe,
            "pending_window": self.pending_window,
            "candidates": len(self.log),
        }
        return save_windows(path, self.windows, self.rule, depth=self.depth_before, metadata=meta)

    def summary(self) -> dict[str, Any]:
        """One row for a τ sweep table: blocks before/after, windows, calibration MPJPE and Δ."""
        return {
            "tau_mm": self.tau_mm,
            "rule": self.rule,
            "blocks_before": self.depth_before,
            "blocks_after": self.depth_after,
            "windows": json.dumps([list(w) for w in sorted(self.windows)]),
            "dropped_blocks": json.dumps(dropped_view(self.windows)),
            "calib_base_mpjpe": self.base_mpjpe,
            "calib_mpjpe": self.final_mpjpe,
            "calib_delta": self.final_mpjpe - self.base_mpjpe,
            "candidates": len(self.log),
        }


def dropped_view(windows: Sequence[Window]) -> list[int]:
    """The equivalent 'deleted blocks' view: for 2-block windows under ``paper``/``drop`` the merged
    block *is* block hi, i.e. blocks lo..hi-1 are deleted. Returned for any window (for ``paper`` with
    >= 3 blocks the merged block is not any single original block)."""
    return sorted(i for lo, hi in windows for i in range(lo, hi))


LOG_COLUMNS = (
    "step", "rule", "tau_mm", "window_lo", "window_hi", "window_size", "committed_before", "mpjpe",
    "base_mpjpe", "delta", "accepted", "action", "blocks_left", "wall_s",
)  # fmt: skip


def _write_log(df: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)


@dataclass
class _SearchState:
    """Algorithm 1's loop variables: the candidate window ``[low, high]`` (original indices), the
    committed windows, the MPJPE (mm) of every evaluated configuration and the log rows."""

    depth: int
    base: float
    high: int
    low: int
    committed: list[Window] = field(default_factory=list)
    mpjpe_of: dict[frozenset, float] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)

    def advance(self, accepted: bool) -> str:
        """Algorithm 1's move after the candidate ``[low, high]`` was judged; returns the log action.

        Accepted: the window grows (``low -= 1``). Rejected: the last accepted window ``[low+1, high]``
        is committed when it has >= 2 blocks (next window just below it), else the window slides down."""
        low, high = self.low, self.high
        if accepted:
            self.low = low - 1
            return "grow"
        if low + 1 != high:
            self.committed.append((low + 1, high))
            self.high, self.low = low, low - 1
            return f"commit [{low + 1}, {high}]"
        self.high, self.low = high - 1, low - 1
        return "slide"

    def end_of_loop(self, commit_pending: bool) -> Window | None:
        """The accepted-but-uncommitted window ``[0, high]`` left when the loop ends (``None`` if none);
        committed (and noted in the last log row) when ``commit_pending``, then ``None`` is returned."""
        pending = (self.low + 1, self.high) if self.low + 1 != self.high else None
        if pending is not None and commit_pending:
            self.committed.append(pending)
            self.rows[-1]["action"] += f"; end of loop: commit pending [{pending[0]}, {pending[1]}]"
            pending = None
        return pending


def _try_candidate(
    model: nn.Module,
    evaluator: Callable[[nn.Module], float],
    tau_mm: float,
    rule: str,
    st: _SearchState,
    memo: dict | None = None,
) -> dict[str, Any]:
    """Evaluate the candidate ``[low, high]`` on top of the committed windows (or take its MPJPE from
    ``memo``, keyed by rule and window set), accept it when ``MPJPE - base < tau_mm``, advance ``st``
    and append (and return) the candidate's log row (``wall_s`` 0 for a memoised one)."""
    cand = [*st.committed, (st.low, st.high)]
    key = (rule, frozenset(cand))
    t0 = time.perf_counter()
    if memo is not None and key in memo:
        m, dt = memo[key], 0.0
    else:
        m = float(evaluator(apply_windows(model, cand, rule)))
        dt = time.perf_counter() - t0
        if memo is not None:
            memo[key] = m
    delta = m - st.base
    accepted = delta < tau_mm
    st.mpjpe_of[frozenset(cand)] = m
    action = st.advance(accepted)
    row = {
        "step": len(st.rows),
        "rule": rule,
        "tau_mm": tau_mm,
        "window_lo": cand[-1][0],
        "window_hi": cand[-1][1],
        "window_size": cand[-1][1] - cand[-1][0] + 1,
        "committed_before": json.dumps([list(w) for w in cand[:-1]]),
        "mpjpe": m,
        "base_mpjpe": st.base,
        "delta": delta,
        "accepted": bool(accepted),
        "action": action,
        "blocks_left": depth_after(st.depth, cand),
        "wall_s": dt,
    }
    st.rows.append(row)
    return row


def search(
    model: nn.Module,
    evaluator: Callable[[nn.Module], float],
    tau_mm: float,
    *,
    rule: str = "paper",
    commit_pending: bool = True,
    log_csv: str | Path | None = None,
    progress: bool = True,
    memo: dict | None = None,
) -> ECLMResult:
    """Algorithm 1 of the paper, literally (greedy top-down sliding window).

    ``base = evaluator(model)``; ``high = L-1, low = high-1``; while ``low >= 0``: the candidate merges
    ``[low, high]`` on top of the committed windows; if ``MPJPE - base < tau_mm`` the window grows
    (``low -= 1``); else, if the last accepted window ``[low+1, high]`` has >= 2 blocks it is committed
    and the next window starts just below it (``high = low``), otherwise the window slides down
    (``high -= 1; low -= 1``). Every candidate MPJPE is measured (no CKA).

    End of the loop: if the last candidate (``[0, high]``) was accepted, the pseudo-code leaves it
    uncommitted; ``commit_pending=True`` (default) commits it, ``False`` is the literal pseudo-code.

    ``evaluator``: model -> mean MPJPE (mm) on the **selection split** (see
    :func:`check_selection_split`); it receives the merged model as built (a deepcopy of ``model``;
    apply Mask-ToMe to ``model`` first to search with token merging active). ``model`` is never
    modified. Each candidate is logged (columns :data:`LOG_COLUMNS`); with ``log_csv`` the log is
    rewritten atomically after every candidate.

    ``memo``: a dict shared by searches of the same ``model`` and evaluator (a τ sweep, a rule
    comparison): the MPJPE of every configuration evaluated, keyed by ``(rule, frozenset(windows))``
    (the unmerged model under ``frozenset()``), is stored there and not evaluated again. The evaluator
    must be deterministic; the search's decisions and result are then exactly those without it.
    """
    _check_rule(rule)
    if not np.isfinite(tau_mm):
        raise ValueError(f"tau_mm must be a finite number (mm), got {tau_mm}")
    t_start = time.perf_counter()
    depth = len(get_blocks(model))
    if memo is not None and frozenset() in memo:
        base = memo[frozenset()]
    else:
        base = float(evaluator(model))
        if memo is not None:
            memo[frozenset()] = base
    st = _SearchState(depth, base, high=depth - 1, low=depth - 2, mpjpe_of={frozenset(): base})
    # upper bound on the number of candidates: each step lowers `low` by one
    bar = tqdm(total=max(depth - 1, 0), desc=f"ECLM tau={tau_mm:g} mm ({rule})", disable=not progress)
    log_path = Path(log_csv) if log_csv is not None else None
    while st.low >= 0:
        row = _try_candidate(model, evaluator, tau_mm, rule, st, memo)
        bar.update(1)
        bar.set_postfix(
            window=f"[{row['window_lo']},{row['window_hi']}]",
            delta=f"{row['delta']:+.2f}",
            ok=row["accepted"],
        )
        if log_path is not None:
            _write_log(pd.DataFrame(st.rows, columns=list(LOG_COLUMNS)), log_path)
    bar.close()
    pending = st.end_of_loop(commit_pending)
    log = pd.DataFrame(st.rows, columns=list(LOG_COLUMNS))
    if log_path is not None:
        _write_log(log, log_path)
    return ECLMResult(
        windows=st.committed,
        base_mpjpe=base,
        final_mpjpe=st.mpjpe_of[frozenset(st.committed)],  # every committed configuration was evaluated
        log=log,
        rule=rule,
        tau_mm=float(tau_mm),
        depth_before=depth,
        depth_after=depth_after(depth, st.committed),
        pending_window=pending,
        wall_s=time.perf_counter() - t_start,
    )


# --------------------------------------------------------------------------- selection data
def check_selection_split(split: str, *, allow_test: bool = False) -> str:
    """ECLM selects layers on a calibration split, never on a reported test split. The paper selected
    on EMDB test (80 frames per clip); reproducing that needs ``allow_test=True`` and must be reported
    as test-set selection."""
    if str(split).lower().startswith("test") and not allow_test:
        raise ValueError(
            f"selection split {split!r}: ECLM must select on a calibration split (e.g. 'calib'), not on "
            "a test split; pass allow_test=True only to reproduce the paper's EMDB-test selection"
        )
    return split


def sample_per_clip(
    clip_ids: Sequence[str], per_clip: int = 80, *, mode: str = "uniform", seed: int = 0
) -> list[int]:
    """The paper's selection sampler: ``per_clip`` frames from each clip (EMDB: 80 × 17 clips =
    1,360 frames). ``clip_ids[i]`` is the clip of item ``i`` of a frame list (items of one clip in
    frame order). ``mode="uniform"``: evenly spaced over the clip (first and last included);
    ``"random"``: a seeded random subset. Clips shorter than ``per_clip`` give all their frames.
    Returns sorted item indices."""
    if per_clip < 1:
        raise ValueError(f"per_clip must be >= 1, got {per_clip}")
    if mode not in ("uniform", "random"):
        raise ValueError(f"mode must be 'uniform' or 'random', got {mode!r}")
    groups: dict[str, list[int]] = {}
    for i, c in enumerate(clip_ids):
        groups.setdefault(str(c), []).append(i)
    rng = np.random.default_rng(seed)
    out: list[int] = []
    for idx in groups.values():
        n = len(idx)
        if n <= per_clip:
            out.extend(idx)
        elif mode == "uniform":
            pos = np.unique(np.round(np.linspace(0, n - 1, per_clip)).astype(int))
            out.extend(idx[p] for p in pos)
        else:
            out.extend(idx[p] for p in np.sort(rng.choice(n, per_clip, replace=False)))
    return sorted(out)


def clip_ids_of(dataset: Any) -> list[str]:
    """Clip id of every item of a dataset: from a ``clip_ids`` / ``items`` / ``index`` attribute when the
    dataset has one, else by reading each item's ``clip_id`` (slow: loads every crop)."""
    for name in ("clip_ids",):
        v = getattr(dataset, name, None)
        if v is not None and len(v) == len(dataset):
            return [str(c) for c in v]
    for name in ("index", "items", "frames"):
        v = getattr(dataset, name, None)
        if isinstance(v, pd.DataFrame) and "clip_id" in v.columns and len(v) == len(dataset):
            return [str(c) for c in v["clip_id"]]
        if isinstance(v, (list, tuple)) and len(v) == len(dataset) and v and isinstance(v[0], (tuple, list)):
            return [str(t[0]) for t in v]
    if isinstance(dataset, torch.utils.data.Subset):
        parent = clip_ids_of(dataset.dataset)
        return [parent[i] for i in dataset.indices]
    return [str(dataset[i]["clip_id"]) for i in range(len(dataset))]


def selection_subset(
    dataset: Any, split: str, *, per_clip: int | None = 80, allow_test: bool = False, seed: int = 0
) -> Any:
    """``dataset`` (the frames of ``split``) reduced to the paper's per-clip sample, after checking that
    ``split`` may be used for selection. ``per_clip=None`` keeps every frame."""
    check_selection_split(split, allow_test=allow_test)
    if per_clip is None:
        return dataset
    return torch.utils.data.Subset(dataset, sample_per_clip(clip_ids_of(dataset), per_clip, seed=seed))


# --------------------------------------------------------------------------- sweeps
def sweep(
    model: nn.Module,
    evaluator: Callable[[nn.Module], float],
    taus: Sequence[float],
    *,
    rule: str = "paper",
    commit_pending: bool = True,
    log_dir: str | Path | None = None,
    prefix: str = "eclm",
    progress: bool = True,
    memo: dict | None = None,
) -> list[ECLMResult]:
    """:func:`search` for each τ (mm), sharing one ``memo`` (a new one unless given; pass a dict to
    share it further, e.g. with a rule comparison): the base MPJPE and every configuration two τ's
    both try are evaluated once (the evaluator must be deterministic). With ``log_dir``:
    ``<prefix>_log_<rule>_tau<τ>.csv`` and ``..._windows_...json`` per τ."""
    memo = {} if memo is None else memo
    out = []
    for tau in taus:
        stem = f"{prefix}_{rule}_tau{tau:g}"
        log = Path(log_dir) / f"{stem}_log.csv" if log_dir is not None else None
        res = search(
            model, evaluator, tau, rule=rule, commit_pending=commit_pending, log_csv=log, progress=progress,
            memo=memo,
        )  # fmt: skip
        if log_dir is not None:
            res.save(Path(log_dir) / f"{stem}_windows.json")
        out.append(res)
    return out
