"""Checkpoints -> :class:`HMR`: released 4D-Humans (HMR2.0) and CameraHMR files, and our own format.

* **4D-Humans**: ``logs/train/multiruns/hmr2/0/checkpoints/epoch=35-step=1000000.ckpt`` — a PyTorch
  Lightning dict whose ``state_dict`` keys start with ``backbone.`` (389), ``smpl_head.`` (114),
  ``discriminator.``, ``smpl.`` (body-model buffers) and ``initialized``; next to ``checkpoints/`` sits
  ``model_config.yaml`` (read for ``MODEL.SMPL_HEAD``, ``MODEL.IMAGE_SIZE``, ``EXTRA.FOCAL_LENGTH``).
* **CameraHMR**: ``data/pretrained-models/camerahmr_checkpoint_cleaned.ckpt`` — a Lightning-style dict with
  ``state_dict`` keys ``backbone.`` (same ViT-H) and ``smpl_head.`` (CLIFF head: token_dim 160 and
  ``deckp``); no config file (its sizes are constants in its code; our ``camerahmr`` preset).
* **Ours**: a folder with ``model.safetensors`` (``backbone.*`` + ``head.*``, fp32 or fp16) and
  ``config.json`` (``ModelConfig.to_dict()`` + metadata); ``config.json`` is written last.
  The folder functions (:func:`write_folder`, :func:`read_folder_config`, :func:`read_folder_weights`,
  :func:`load_state_strict`) are shared with :class:`fasthmr_lib.fasthmr.FastHMR`'s artefact
  (``fasthmr.json`` + one safetensors file for the per-frame model and the decoder).

Only ``backbone.`` and ``smpl_head.`` are loaded; ``discriminator.``/``smpl.``/... are known extras and
are listed in ``model.checkpoint_info`` (the body model comes from the SMPL folder, see
:mod:`fasthmr_lib.body.smpl`). Every problem (missing/truncated/foreign file, missing, unexpected or
mis-shaped keys) raises one :class:`CheckpointError` naming the file; nothing is loaded partially.
Pickled Lightning checkpoints are read with ``weights_only=True`` first; if their hyper-parameters hold
config objects (yacs/OmegaConf), a restricted unpickler replaces those objects by inert stand-ins and
imports nothing else.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import pickle
import types
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors.torch import load_file, save_file
from torch import nn

from ..body.smpl import SMPLBody
from ..config import ModelConfig, get_preset
from ..io import atomic_path, atomic_write_text
from .hmr import HMR

FORMAT_NAME = "fasthmr-hmr"
FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
_4DH_IGNORED = ("discriminator.", "smpl.", "initialized")
_CAMERAHMR_IGNORED = ("smpl.", "smpl_layer.", "smpl_gt", "cam_model.", "discriminator.", "initialized")


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, damaged, of another model, or does not match the model."""


# ---------------------------------------------------------------------------------------------
# reading pickled (Lightning) checkpoints


class _Inert:
    """Stand-in for any non-tensor object inside a checkpoint (config nodes, enums, ...)."""

    def __init__(self, *args: Any, **kw: Any):
        self.args = args

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __setitem__(self, key: Any, value: Any) -> None:
        self.__dict__.setdefault("items", {})[key] = value

    def append(self, v: Any) -> None:
        self.__dict__.setdefault("list", []).append(v)

    def extend(self, vs: Any) -> None:
        self.__dict__.setdefault("list", []).extend(vs)


_TORCH_PREFIXES = ("torch._utils", "torch.serialization", "torch._tensor", "torch.nn.parameter")
_SAFE = {
    ("collections", "OrderedDict"),
    ("torch", "Size"),
    ("torch", "device"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "slice"),
    ("builtins", "complex"),
    ("torch", "dtype"),
}


_TORCH_DTYPES = {"float32", "float16", "bfloat16", "float64", "int64", "int32", "bool"}


def _allowed_global(module: str, name: str) -> bool:
    """Globals a tensor checkpoint needs (tensor rebuilders, sizes, dtypes, OrderedDict); anything else is
    replaced by an inert stand-in by :class:`_RestrictedUnpickler`."""
    if module.startswith(_TORCH_PREFIXES) and (name.startswith("_rebuild") or name == "Parameter"):
        return True
    if (module, name) in _SAFE or (module == "torch" and name.endswith(("dtype", "Storage"))):
        return True
    return module == "torch" and name in _TORCH_DTYPES


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if _allowed_global(module, name):
            return super().find_class(module, name)
        return type(name, (_Inert,), {"source": f"{module}.{name}"})


class _GlobalScan(pickle.Unpickler):
    """Reads a checkpoint's pickle without its tensor data, recording the globals it names."""

    def __init__(self, data: bytes):
        super().__init__(io.BytesIO(data))
        self.foreign: list[str] = []

    def find_class(self, module: str, name: str) -> Any:
        if not _allowed_global(module, name):
            self.foreign.append(f"{module}.{name}")
        return type(name, (_Inert,), {})

    def persistent_load(self, pid: Any) -> None:  # storages: not read
        return None


def _foreign_globals(path: Path) -> list[str] | None:
    """Non-tensor globals in a zip-format torch checkpoint (e.g. yacs / OmegaConf config nodes in a
    Lightning ``hyper_parameters``), found by reading only its ``data.pkl`` (kilobytes to megabytes, not
    the tensor data). ``None`` when the file is not a zip-format checkpoint or cannot be scanned."""
    try:
        with zipfile.ZipFile(path) as zf:
            member = next((n for n in zf.namelist() if n.endswith("/data.pkl") or n == "data.pkl"), None)
            if member is None:
                return None
            scan = _GlobalScan(zf.read(member))
        scan.load()
    except Exception:  # not a zip, legacy format, odd pickle: the plain path below decides
        return None
    return scan.foreign


_restricted_pickle = types.SimpleNamespace(
    Unpickler=_RestrictedUnpickler, load=pickle.load, __name__="restricted"
)


def _torch_load(path: Path, what: str) -> Any:
    """Read a pickled checkpoint once: the layout is detected first from its pickle alone, then the file
    is memory-mapped (zip format) with ``weights_only=True`` when it holds only tensors, else with the
    restricted unpickler (config objects become inert stand-ins). A legacy (non-zip) file is tried with
    ``weights_only=True`` and then the restricted unpickler."""
    if not path.is_file():
        raise CheckpointError(f"{what} not found: {path}")
    foreign = _foreign_globals(path)
    mmap = foreign is not None  # zip format: map the tensor data instead of reading it into memory
    if not foreign:
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
        except pickle.UnpicklingError:
            pass  # objects beyond tensors: restricted unpickler below
        except Exception as e:
            raise CheckpointError(
                f"{path}: cannot read {what} ({type(e).__name__}: {e}); the file is damaged, "
                f"truncated or not a PyTorch checkpoint"
            ) from e
    try:
        return torch.load(
            path, map_location="cpu", weights_only=False, pickle_module=_restricted_pickle, mmap=mmap
        )
    except Exception as e:
        raise CheckpointError(f"{path}: cannot read {what} ({type(e).__name__}: {e})") from e


def _state_dict_of(raw: Any, path: Path, what: str) -> dict[str, torch.Tensor]:
    sd = raw.get("state_dict", raw) if isinstance(raw, Mapping) else None
    if not isinstance(sd, Mapping) or not sd or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise CheckpointError(
            f"{path}: expected {what}: a PyTorch Lightning dict with a 'state_dict' of tensors "
            f"(keys 'backbone.*', 'smpl_head.*'); top-level keys found: "
            f"{sorted(raw)[:10] if isinstance(raw, Mapping) else type(raw).__name__}"
        )
    return dict(sd)


# ---------------------------------------------------------------------------------------------
# mapping a state dict onto HMR (all-or-nothing)


def _file_key(k: str) -> str:
    """Model key -> the release's key (``head.*`` is ``smpl_head.*`` in the files)."""
    return "smpl_head." + k[5:] if k.startswith("head.") else k


def _same_key(k: str) -> str:
    return k


def _shape_targets(module: nn.Module, keep: Callable[[str], bool]) -> dict[str, torch.Tensor]:
    """``module``'s state-dict entries whose key passes ``keep``, as meta tensors (shape and dtype only:
    holding the module's own tensors here would keep them alive after assignment)."""
    return {
        k: torch.empty(v.shape, dtype=v.dtype, device="meta")
        for k, v in module.state_dict().items()
        if keep(k)
    }


def _mismatches(
    target: Mapping[str, torch.Tensor], sd: Mapping[str, torch.Tensor], name: Callable[[str], str] = _same_key
) -> tuple[list[str], list[str], list[str]]:
    """(missing, unexpected, mis-shaped) keys of ``sd`` against ``target``, each named by ``name``."""
    missing = sorted(name(k) for k in target if k not in sd)
    unexpected = sorted(name(k) for k in sd if k not in target)
    shape_bad = sorted(
        f"{name(k)}: file {tuple(v.shape)} vs model {tuple(target[k].shape)}"
        for k, v in sd.items()
        if k in target and tuple(v.shape) != tuple(target[k].shape)
    )
    return missing, unexpected, shape_bad


def _problems(missing: list[str], unexpected: list[str], shape_bad: list[str]) -> list[str]:
    """One line per kind of key mismatch (empty: the keys match)."""
    problems = []
    if shape_bad:
        problems.append(f"shape mismatches ({len(shape_bad)}): {shape_bad[:8]}")
    if missing:
        problems.append(f"missing keys ({len(missing)}): {missing[:12]}")
    if unexpected:
        problems.append(f"unexpected keys ({len(unexpected)}): {unexpected[:12]}")
    return problems


def _assign_finite(
    module: nn.Module,
    sd: Mapping[str, torch.Tensor],
    target: Mapping[str, torch.Tensor],
    path: Path,
    name: Callable[[str], str] = _same_key,
) -> None:
    """Assign the ``target`` keys of ``sd`` to ``module`` (dtypes follow the module); NaN / Inf in a
    floating tensor raises :class:`CheckpointError` naming it, before anything is assigned.

    The module takes the loaded tensors themselves (``assign=True``: memory-mapped for zip-format files,
    so a checkpoint is resident once, not twice)."""
    sd = {
        k: (v if v.dtype == target[k].dtype else v.to(target[k].dtype)) for k, v in sd.items() if k in target
    }
    bad = next((k for k, v in sd.items() if v.is_floating_point() and not torch.isfinite(v).all()), None)
    if bad is not None:
        raise CheckpointError(
            f"{path}: tensor {name(bad)!r} holds NaN or Inf values: the file is damaged "
            "(its bytes changed); nothing was loaded"
        )
    with torch.no_grad():
        module.load_state_dict(sd, strict=False, assign=True)


def load_state_strict(
    module: nn.Module,
    sd: Mapping[str, torch.Tensor],
    path: str | os.PathLike,
    what: str,
    *,
    prefixes: tuple[str, ...] | None = None,
) -> None:
    """Load the state dict ``sd`` (key -> tensor, any float dtype) into ``module``, all or nothing.

    Only ``module``'s keys starting with ``prefixes`` are expected (``None``: all of them). Missing,
    unexpected or mis-shaped keys and NaN / Inf tensors raise one :class:`CheckpointError` naming ``path``
    and ``what`` (e.g. "the motion VAE"); ``module`` is then left unchanged."""
    target = _shape_targets(module, lambda k: prefixes is None or k.startswith(prefixes))
    problems = _problems(*_mismatches(target, sd))
    if problems:
        raise CheckpointError(
            f"{path}: weights of {what} do not match its config; nothing was loaded. " + "; ".join(problems)
        )
    _assign_finite(module, sd, target, Path(path))


def _map_to_model(
    model: HMR, sd: Mapping[str, torch.Tensor], path: Path, what: str, ignored: tuple[str, ...], strict: bool
) -> dict:
    """Map a release state dict (``backbone.*``, ``smpl_head.*``; ``ignored`` prefixes skipped) onto
    ``model`` all or nothing; returns its ``checkpoint_info`` (counts, missing / unexpected keys)."""
    prefix_map = {"backbone.": "backbone.", "smpl_head.": "head."}
    target = _shape_targets(model, lambda k: not k.startswith("smpl."))
    mapped, ignored_keys, unexpected = {}, [], []
    for k, v in sd.items():
        src = next((p for p in prefix_map if k.startswith(p)), None)
        if src is not None:
            mapped[prefix_map[src] + k[len(src) :]] = v
        elif k.startswith(ignored):
            ignored_keys.append(k)
        else:
            unexpected.append(k)
    if not any(k.startswith("backbone.") for k in mapped) or not any(k.startswith("head.") for k in mapped):
        raise CheckpointError(f"{path}: no 'backbone.*' / 'smpl_head.*' weights: not {what}")
    missing, extra, shape_bad = _mismatches(target, mapped, _file_key)  # named as in the file
    unexpected = sorted(unexpected) + extra
    problems = _problems(missing if strict else [], unexpected if strict else [], shape_bad)
    if problems:
        raise CheckpointError(
            f"{path}: does not match the model config {model.cfg.name!r} for {what}"
            f"{_loader_hint(mapped, target)}; nothing was loaded. " + "; ".join(problems)
        )
    _assign_finite(model, mapped, target, path, _file_key)  # on error the model is discarded with it
    return {
        "file": str(path),
        "format": what,
        "loaded": len(mapped) - len(extra),
        "ignored": len(ignored_keys),
        "ignored_prefixes": sorted({k.split(".")[0] for k in ignored_keys}),
        "missing": missing,
        "unexpected": unexpected,
    }


def _loader_hint(mapped: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor]) -> str:
    """Which loader fits the file when its head is the other release's (CameraHMR's has ``deckp``)."""
    file_deckp, model_deckp = "head.deckp.weight" in mapped, "head.deckp.weight" in target
    if file_deckp and not model_deckp:
        return " (the file holds a CameraHMR head: use load_camerahmr)"
    if model_deckp and not file_deckp:
        return " (the file holds an HMR2.0 head: use load_4dhumans)"
    return ""


def _resolve_cfg(cfg: str | ModelConfig | None, default: str) -> ModelConfig:
    if cfg is None:
        return get_preset(default)
    return get_preset(cfg) if isinstance(cfg, str) else cfg


def _read_4dh_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise CheckpointError(f"{path}: cannot read the 4D-Humans model_config.yaml ({e})") from e
    if not isinstance(data, dict) or "MODEL" not in data:
        raise CheckpointError(f"{path}: expected a 4D-Humans model_config.yaml with a MODEL section")
    return data


def config_from_4dhumans_yaml(data: Mapping, base: ModelConfig) -> ModelConfig:
    """Head sizes and camera constants from a 4D-Humans ``model_config.yaml`` (parsed) over ``base``.

    Reads ``MODEL.SMPL_HEAD.{TYPE, TRANSFORMER_DECODER, JOINT_REP, TRANSFORMER_INPUT, IEF_ITERS}``,
    ``MODEL.IMAGE_SIZE``, ``EXTRA.FOCAL_LENGTH``, ``SMPL.NUM_BODY_JOINTS``, ``MODEL.BACKBONE.TYPE``.
    Options this implementation does not have raise ``CheckpointError``."""
    model = data.get("MODEL", {}) or {}
    head = model.get("SMPL_HEAD", {}) or {}
    if model.get("BACKBONE", {}).get("TYPE", "vit") != "vit":
        raise CheckpointError(
            f"MODEL.BACKBONE.TYPE {model['BACKBONE']['TYPE']!r} is not supported (only 'vit')"
        )
    checks = {"TYPE": "transformer_decoder", "JOINT_REP": "6d", "TRANSFORMER_INPUT": "zero", "IEF_ITERS": 1}
    for key, want in checks.items():
        got = head.get(key, want if key != "TYPE" else None)
        if got != want:
            raise CheckpointError(f"MODEL.SMPL_HEAD.{key} = {got!r} is not supported (expected {want!r})")
    td = head.get("TRANSFORMER_DECODER", {}) or {}
    keys = ("depth", "heads", "mlp_dim", "dim_head", "context_dim")
    h = dataclasses.replace(base.head, **{k: int(td[k]) for k in keys if k in td})
    nbj = (data.get("SMPL", {}) or {}).get("NUM_BODY_JOINTS", 23)
    if int(nbj) != 23:
        raise CheckpointError(f"SMPL.NUM_BODY_JOINTS = {nbj} is not supported (expected 23)")
    kw = {"head": h}
    if "IMAGE_SIZE" in model:
        kw["image_size"] = int(model["IMAGE_SIZE"])
    focal = (data.get("EXTRA", {}) or {}).get("FOCAL_LENGTH")
    if focal is not None:
        kw["focal_length"] = float(focal)
    return base.replace(**kw)


def load_4dhumans(
    ckpt_path: str | os.PathLike,
    model_cfg_yaml: str | os.PathLike | None = None,
    *,
    cfg: str | ModelConfig | None = None,
    smpl: SMPLBody | None = None,
    strict: bool = True,
) -> HMR:
    """Load a released 4D-Humans HMR2.0 checkpoint into :class:`HMR` (eval mode).

    Args:
        ckpt_path: the Lightning ``.ckpt``.
        model_cfg_yaml: ``model_config.yaml``; default ``<ckpt>/../../model_config.yaml`` if present
            (else the ``hmr2`` preset's values; shapes are checked against the weights either way).
        cfg: architecture base (default ``hmr2``; the 4D-Humans backbone is fixed ViT-H, so only pass
            this for made test files or variants); the yaml's head sizes override its head section.
        smpl: body model (default: :func:`fasthmr_lib.body.smpl.load_body_model`).
        strict: missing / unexpected weights are errors (default) or only listed in ``checkpoint_info``.
    """
    path = Path(ckpt_path)
    base = _resolve_cfg(cfg, "hmr2")
    if model_cfg_yaml is not None:
        ypath = Path(model_cfg_yaml)
        if not ypath.is_file():
            raise CheckpointError(f"4D-Humans model config not found: {ypath}")
    else:
        ypath = path.parent.parent / "model_config.yaml"
    if ypath.is_file():
        try:
            base = config_from_4dhumans_yaml(_read_4dh_yaml(ypath), base)
        except CheckpointError as e:
            raise CheckpointError(f"{ypath}: {e}") from None
    what = "a 4D-Humans HMR2.0 checkpoint"
    sd = _state_dict_of(_torch_load(path, what), path, what)
    model = HMR(base, smpl=smpl)
    info = _map_to_model(model, sd, path, what, _4DH_IGNORED, strict)
    info["model_config_yaml"] = str(ypath) if ypath.is_file() else None
    model.checkpoint_info = info
    return model.eval()


def load_camerahmr(
    path: str | os.PathLike,
    *,
    cfg: str | ModelConfig | None = None,
    smpl: SMPLBody | None = None,
    strict: bool = True,
) -> HMR:
    """Load CameraHMR's released SMPL checkpoint (``camerahmr_checkpoint_cleaned.ckpt``) into
    :class:`HMR` with the ``camerahmr`` preset (or ``cfg``): ``backbone.*`` + ``smpl_head.*`` (CLIFF
    query token, ``deckp``); its camera/body-model sub-networks are listed as ignored."""
    path = Path(path)
    what = "a CameraHMR checkpoint"
    sd = _state_dict_of(_torch_load(path, what), path, what)
    model = HMR(_resolve_cfg(cfg, "camerahmr"), smpl=smpl)
    model.checkpoint_info = _map_to_model(model, sd, path, what, _CAMERAHMR_IGNORED, strict)
    return model.eval()


# ---------------------------------------------------------------------------------------------
# our own format


@dataclasses.dataclass(frozen=True)
class FolderFormat:
    """One of our folder formats: ``weights_file`` (safetensors) + ``config_file`` (JSON, written last:
    ``{"format": name, "format_version": version, "model": ModelConfig dict, ..., "dtype", "num_tensors",
    "metadata"}``). ``what`` and ``writer`` name the format and the function that writes it in errors."""

    name: str
    version: int
    config_file: str
    weights_file: str = WEIGHTS_FILE
    what: str = "checkpoint"
    writer: str = "save_checkpoint"


HMR_FORMAT = FolderFormat(FORMAT_NAME, FORMAT_VERSION, CONFIG_FILE)


def model_config_of(model: HMR) -> ModelConfig:
    """``model``'s config with the depth it has now (layer merging may have shortened the block list)."""
    cfg = model.cfg
    return cfg.replace(vit=dataclasses.replace(cfg.vit, depth=model.backbone.depth))


def write_folder(
    directory: str | os.PathLike,
    fmt: FolderFormat,
    tensors: Mapping[str, torch.Tensor],
    header: Mapping[str, Any],
    *,
    fp16: bool = False,
    metadata: Mapping[str, Any] | None = None,
    weights_metadata: Mapping[str, str] | None = None,
) -> Path:
    """Write ``tensors`` (key -> tensor; floating ones in half precision when ``fp16``) to
    ``fmt.weights_file`` and ``{"format", "format_version", **header, "dtype", "num_tensors", "metadata"}``
    to ``fmt.config_file`` in ``directory``, each atomically, the config last (a folder with a config is
    complete). ``metadata`` (JSON-serialisable) is stored as given; ``weights_metadata`` goes into the
    safetensors header next to ``format``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    out = {}
    for k, v in tensors.items():
        v = v.detach().cpu()
        if fp16 and v.is_floating_point():
            v = v.half()
        out[k] = v.contiguous().clone()
    with atomic_path(directory / fmt.weights_file) as tmp:
        save_file(out, str(tmp), metadata={"format": fmt.name, **(weights_metadata or {})})
    doc = {
        "format": fmt.name,
        "format_version": fmt.version,
        **header,
        "dtype": "float16" if fp16 else "float32",
        "num_tensors": len(out),
        "metadata": dict(metadata or {}),
    }
    atomic_write_text(directory / fmt.config_file, json.dumps(doc, indent=2, default=str) + "\n")
    return directory


def read_folder_config(directory: str | os.PathLike, fmt: FolderFormat) -> dict[str, Any]:
    """The parsed ``fmt.config_file`` of a folder written by :func:`write_folder` (format, version and the
    ``model`` entry checked)."""
    cpath = Path(directory) / fmt.config_file
    if not cpath.is_file():
        raise CheckpointError(
            f"{fmt.what} config not found: {cpath} (expected a folder written by {fmt.writer})"
        )
    try:
        doc = json.loads(cpath.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{cpath}: not valid JSON ({e})") from e
    if not isinstance(doc, dict) or doc.get("format") != fmt.name or "model" not in doc:
        got = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise CheckpointError(f"{cpath}: not a {fmt.name} checkpoint config (format={got!r})")
    if int(doc.get("format_version", 0)) > fmt.version:
        raise CheckpointError(
            f"{cpath}: format_version {doc['format_version']} is newer than this library reads"
        )
    return doc


def read_folder_weights(directory: str | os.PathLike, fmt: FolderFormat) -> dict[str, torch.Tensor]:
    """All tensors of ``fmt.weights_file`` in ``directory`` (as stored: fp32 or fp16, on the CPU)."""
    wpath = Path(directory) / fmt.weights_file
    if not wpath.is_file():
        raise CheckpointError(f"{fmt.what} weights not found: {wpath}")
    try:
        return load_file(str(wpath))
    except Exception as e:  # safetensors' own SafetensorError, OSError, ...
        raise CheckpointError(
            f"{wpath}: cannot read safetensors weights ({type(e).__name__}: {e}); "
            "the file is damaged, truncated or not a safetensors file"
        ) from e


def model_config_from(doc: Mapping[str, Any], path: str | os.PathLike) -> ModelConfig:
    """The :class:`ModelConfig` in a config document's ``model`` entry; errors name ``path``."""
    try:
        return ModelConfig.from_dict(doc["model"])
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: bad model config ({e})") from e


def save_checkpoint(
    model: HMR, directory: str | os.PathLike, *, fp16: bool = False, metadata: Mapping[str, Any] | None = None
) -> Path:
    """Write ``model.safetensors`` (backbone + head weights, fp32 or fp16) and ``config.json``
    (``{"format", "format_version", "model": ModelConfig dict, "dtype", "metadata"}``) into ``directory``,
    atomically, config last. ``metadata`` (JSON-serialisable: recipe, metrics, ...) is stored as given."""
    tensors = {k: v for k, v in model.state_dict().items() if k.startswith(("backbone.", "head."))}
    cfg = model_config_of(model)
    return write_folder(
        directory,
        HMR_FORMAT,
        tensors,
        {"model": cfg.to_dict()},
        fp16=fp16,
        metadata=metadata,
        weights_metadata={"model": cfg.name},
    )


def read_checkpoint_config(directory: str | os.PathLike) -> dict:
    """The parsed ``config.json`` of one of our checkpoints (format checked)."""
    return read_folder_config(directory, HMR_FORMAT)


def load_checkpoint(
    directory: str | os.PathLike, *, smpl: SMPLBody | None = None, strict: bool = True
) -> HMR:
    """Inverse of :func:`save_checkpoint`: the model in float32, eval mode; ``model.checkpoint_info``
    holds ``config.json``'s metadata."""
    directory = Path(directory)
    doc = read_checkpoint_config(directory)
    cfg = model_config_from(doc, directory / CONFIG_FILE)
    tensors = read_folder_weights(directory, HMR_FORMAT)
    model = HMR(cfg, smpl=smpl)
    ref = model.state_dict()
    sd = {_file_key(k): v.to(ref[k].dtype) if k in ref else v for k, v in tensors.items()}
    info = _map_to_model(model, sd, directory / WEIGHTS_FILE, f"a {FORMAT_NAME} checkpoint", (), strict)
    info["metadata"] = doc.get("metadata", {})
    info["dtype"] = doc.get("dtype")
    model.checkpoint_info = info
    return model.eval()
