"""The paper path's inputs: resolve each from a notebook parameter or its ``FASTHMR_*`` variable, check
them all at once, and load the released models.

Every notebook calls :func:`resolve` in its first code cell after the parameters, with
``data_source="real"`` under the ``paper`` / ``paper_smoke`` profiles (``"embedded"``: the synthetic world,
nothing is checked). A missing or wrong input stops the notebook before any work with ONE
:class:`PaperInputsError` listing every problem and what the file should be.

Inputs (notebook parameter -> environment variable; the parameter wins when both are set):

========================== ========================= ===============================================
parameter                  environment variable      what it is
========================== ========================= ===============================================
real_checkpoint            FASTHMR_HMR2_CKPT         4D-Humans HMR 2.0 ``.ckpt`` (release layout)
real_camerahmr_checkpoint  FASTHMR_CAMERAHMR_CKPT    CameraHMR ``camerahmr_checkpoint_cleaned.ckpt``
smpl_dir                   FASTHMR_SMPL_DIR          SMPL folder (``SMPL_NEUTRAL.pkl``, ``SMPL_to_J19.npy``)
real_3dpw_dir              FASTHMR_3DPW_DIR          3DPW records (``data_prep.convert_3dpw``)
real_emdb_dir              FASTHMR_EMDB_DIR          EMDB-1 records (``data_prep.convert_emdb``)
real_calib_dir             FASTHMR_CALIB_DIR         ECLM calibration records (default: the 3DPW records)
real_amass_dir             FASTHMR_AMASS_DIR         AMASS motion records (``data_prep.convert_amass``)
h36m_regressor             FASTHMR_H36M_REGRESSOR    ``J_regressor_h36m.npy`` (17, 6890)
========================== ========================= ===============================================
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import ModelConfig, get_preset

DATA_SOURCES = ("embedded", "real")
ENV_VARS = {
    "real_checkpoint": "FASTHMR_HMR2_CKPT",
    "real_camerahmr_checkpoint": "FASTHMR_CAMERAHMR_CKPT",
    "smpl_dir": "FASTHMR_SMPL_DIR",
    "real_3dpw_dir": "FASTHMR_3DPW_DIR",
    "real_emdb_dir": "FASTHMR_EMDB_DIR",
    "real_calib_dir": "FASTHMR_CALIB_DIR",
    "real_amass_dir": "FASTHMR_AMASS_DIR",
    "h36m_regressor": "FASTHMR_H36M_REGRESSOR",
}
WHAT = {
    "real_checkpoint": "the 4D-Humans HMR 2.0 release checkpoint "
    "logs/train/multiruns/hmr2/0/checkpoints/epoch=35-step=1000000.ckpt (model_config.yaml two folders up)",
    "real_camerahmr_checkpoint": "CameraHMR's data/pretrained-models/camerahmr_checkpoint_cleaned.ckpt",
    "smpl_dir": "a folder with SMPL_NEUTRAL.pkl (or .npz) and 4D-Humans' SMPL_to_J19.npy "
    "(+ SMPL_mean_params.npz)",
    "real_3dpw_dir": "3DPW converted by `python -m data_prep.convert_3dpw SRC OUT` "
    "(OUT/meta.json, OUT/<split>/)",
    "real_emdb_dir": "EMDB-1 converted by `python -m data_prep.convert_emdb SRC OUT` "
    "(OUT/meta.json, OUT/test/)",
    "real_calib_dir": "records holding the ECLM calibration split (default: the 3DPW records, split "
    "'validation')",
    "real_amass_dir": "AMASS converted by `python -m data_prep.convert_amass SRC OUT` "
    "(OUT/meta.json, OUT/train/)",
    "h36m_regressor": "J_regressor_h36m.npy, a (17, 6890) float array (SPIN / WHAM data folder)",
}
_KIND = {"real_checkpoint": "file", "real_camerahmr_checkpoint": "file", "smpl_dir": "smpl",
         "real_3dpw_dir": "records", "real_emdb_dir": "records", "real_calib_dir": "records",
         "real_amass_dir": "records", "h36m_regressor": "regressor"}  # fmt: skip
DEFAULT_SPLITS = {"real_3dpw_dir": "test", "real_emdb_dir": "test", "real_calib_dir": "validation",
                  "real_amass_dir": "train"}  # fmt: skip
BOX_MASK = "box"  # person mask = the person's box (for records without masks; see CropDataset)


class PaperInputsError(FileNotFoundError):
    """One or more paper-path inputs are missing or wrong (the message lists every one)."""


def arch_config(kind: str, arch: str = "") -> ModelConfig:
    """The architecture a released checkpoint of ``kind`` ('hmr2' or 'camerahmr') is loaded into: the
    release's preset, or the ``arch`` preset's widths (e.g. 'tiny' for the format stand-ins) with the
    head input of ``kind`` (CameraHMR: CLIFF box token + 88-value keypoint readout)."""
    if kind not in ("hmr2", "camerahmr"):
        raise ValueError(f"checkpoint kind must be 'hmr2' or 'camerahmr', got {kind!r}")
    if not arch:
        return get_preset(kind)
    cfg = get_preset(arch)
    if kind == "camerahmr":
        head = dataclasses.replace(cfg.head, token_input="bbox", kp_readout=88)
        cfg = cfg.replace(name=f"{arch}_camerahmr", head=head)
    return cfg


def _check_records(path: Path, splits: Sequence[str], mask_kind: str | None) -> str | None:
    meta_path = path / "meta.json"
    if not meta_path.is_file():
        return f"{path}: no meta.json (not a converted record root)"
    empty = [s for s in splits if not ((path / s).is_dir() and any((path / s).glob("*.npz")))]
    if empty:
        return f"{path}: no clips in split(s) {empty} (<root>/<split>/*.npz)"
    if mask_kind and mask_kind != BOX_MASK:
        masks = json.loads(meta_path.read_text()).get("masks")
        covered = masks.get("splits", []) if isinstance(masks, dict) else []
        if masks is False or (isinstance(masks, dict) and not set(splits) <= set(covered)):
            return (
                f"{path}: split(s) {list(splits)} have no person masks (meta.json masks: {masks}); "
                f"add them with `python -m data_prep.add_person_masks {path} --segmenter ... "
                f"--split {' '.join(splits)}` or use mask kind {BOX_MASK!r}"
            )
    return None


def _check_smpl(path: Path) -> str | None:
    if not path.is_dir():
        return f"{path}: not a folder"
    model = [p for p in ("SMPL_NEUTRAL.pkl", "SMPL_NEUTRAL.npz", "basicModel_neutral_lbs_10_207_0_v1.0.0.pkl")
             if (path / p).is_file()]  # fmt: skip
    missing = ([] if model else ["SMPL_NEUTRAL.pkl"]) + [
        f for f in ("SMPL_to_J19.npy",) if not (path / f).is_file()
    ]
    return f"{path}: missing {', '.join(missing)}" if missing else None


def _check_regressor(path: Path) -> str | None:
    # the loader's own checks (file, .npy, shape (17, V)), so the two never disagree
    from .eval.metrics import load_h36m_regressor

    try:
        load_h36m_regressor(path)
    except (FileNotFoundError, ValueError) as e:
        return str(e)
    return None


def check_one(
    name: str, path: Path, splits: str | Sequence[str] | None = None, mask_kind: str | None = None
) -> str | None:
    """The problem with input ``name`` at ``path`` (``None`` when it is usable); record roots must hold
    every split of ``splits`` (default :data:`DEFAULT_SPLITS`)."""
    kind = _KIND[name]
    if kind == "file":
        return None if path.is_file() else f"{path}: file not found"
    if kind == "smpl":
        return _check_smpl(path)
    if kind == "regressor":
        return _check_regressor(path)
    splits = splits or DEFAULT_SPLITS[name]
    return _check_records(path, [splits] if isinstance(splits, str) else list(splits), mask_kind)


@dataclass(frozen=True)
class PaperInputs:
    """Resolved inputs of one notebook: ``paths`` {parameter name: Path} of the needed ones (``real``
    False: the embedded world is used and ``paths`` is empty); ``arch``: architecture widths the released
    checkpoints are loaded into ('' = the release's own); ``mask_kind``: person masks of the records."""

    real: bool
    paths: dict[str, Path] = field(default_factory=dict)
    splits: dict[str, Any] = field(default_factory=dict)
    arch: str = ""
    mask_kind: str = BOX_MASK

    def __getitem__(self, name: str) -> Path:
        if name not in self.paths:
            raise KeyError(f"paper input {name!r} was not resolved (resolve(..., needs=[{name!r}, ...]))")
        return self.paths[name]

    def body(self, device: str = "cpu") -> Any:
        """The body model: the user's SMPL folder (real) or the default one (embedded)."""
        from .body.smpl import load_body_model

        return load_body_model(self.paths.get("smpl_dir"), device=device)

    def gt_bodies(self, device: str = "cpu") -> Any:
        """Per-gender body models of the same folder for the ground truth (``evaluate(gt_bodies=...)``): 3DPW
        and EMDB annotate gendered SMPL parameters; a missing gender model falls back to the neutral one."""
        from .body.smpl import GenderedBodies

        return GenderedBodies(self.paths.get("smpl_dir"), device=device)

    def load_model(self, kind: str, body: Any, device: str = "cpu") -> Any:
        """The released ``kind`` ('hmr2' or 'camerahmr') checkpoint as an :class:`HMR` in eval mode."""
        from .models.checkpoints import load_4dhumans, load_camerahmr

        cfg = arch_config(kind, self.arch)
        if kind == "hmr2":
            return load_4dhumans(self["real_checkpoint"], cfg=cfg, smpl=body).to(device).eval()
        return load_camerahmr(self["real_camerahmr_checkpoint"], cfg=cfg, smpl=body).to(device).eval()

    def inventory(self) -> list[dict[str, str]]:
        """One row per resolved input: parameter, environment variable, path, split."""
        return [{"input": k, "env": ENV_VARS[k], "path": str(p), "splits": str(self.splits.get(k, ""))}
                for k, p in self.paths.items()]  # fmt: skip


def given_from(namespace: Mapping[str, Any]) -> dict[str, Any]:
    """The input parameters present in ``namespace`` (a notebook's ``globals()``)."""
    return {k: namespace[k] for k in ENV_VARS if k in namespace}


def resolve(
    data_source: str,
    given: Mapping[str, str | None],
    needs: Sequence[str],
    *,
    optional: Sequence[str] = (),
    splits: Mapping[str, str | Sequence[str]] | None = None,
    arch: str = "",
    mask_kind: str = BOX_MASK,
) -> PaperInputs:
    """Resolve and check the inputs ``needs`` (parameter names of :data:`ENV_VARS`).

    Args:
        data_source: 'embedded' (returns ``PaperInputs(real=False)``, checks nothing) or 'real'.
        given: notebook parameter values by name (empty / None: use the environment variable).
        needs: the inputs this notebook uses; ``real_calib_dir`` falls back to ``real_3dpw_dir``.
        optional: inputs checked only when set (e.g. ``h36m_regressor`` while no protocol uses it).
        splits: split(s) each record root must hold (default :data:`DEFAULT_SPLITS`).
        arch: '' or a preset name whose widths the stand-in checkpoints have (e.g. 'tiny').
        mask_kind: person masks the notebook reads ('box' works on any records).
    Raises:
        PaperInputsError: listing every missing / wrong input with what it should be.
        ValueError: unknown ``data_source`` or input name.
    """
    if data_source not in DATA_SOURCES:
        raise ValueError(f"data_source must be one of {DATA_SOURCES}, got {data_source!r}")
    unknown = sorted((set(needs) | set(optional)) - set(ENV_VARS))
    if unknown:
        raise ValueError(f"unknown paper inputs {unknown}; known: {sorted(ENV_VARS)}")
    if data_source == "embedded":
        return PaperInputs(real=False, arch=arch, mask_kind=mask_kind)
    split_of = {**DEFAULT_SPLITS, **(splits or {})}
    paths: dict[str, Path] = {}
    problems: list[str] = []
    for name in [*needs, *(o for o in optional if o not in needs)]:
        raw = given.get(name) or os.environ.get(ENV_VARS[name])
        if not raw and name not in needs:
            continue
        if not raw and name == "real_calib_dir":
            raw = given.get("real_3dpw_dir") or os.environ.get(ENV_VARS["real_3dpw_dir"])
        if not raw:
            problems.append(f"{name} ({ENV_VARS[name]}): not set -- {WHAT[name]}")
            continue
        path = Path(str(raw)).expanduser().resolve()
        err = check_one(name, path, split_of.get(name), mask_kind)
        if err:
            problems.append(f"{name} ({ENV_VARS[name]}): {err} -- expected {WHAT[name]}")
        paths[name] = path
    if problems:
        raise PaperInputsError(
            f"{len(problems)} paper input(s) missing or wrong (set them in notebooks/profiles/paper.yaml or "
            "as environment variables; see README 'The paper path'):\n  - " + "\n  - ".join(problems)
        )
    used = {k: split_of[k] for k in paths if k in split_of}
    return PaperInputs(real=True, paths=paths, splits=used, arch=arch, mask_kind=mask_kind)


#: what each notebook reads under ``data_source: real`` (and the splits its record roots must hold)
NOTEBOOK_NEEDS: dict[str, tuple[str, ...]] = {
    "00": ("real_checkpoint", "real_camerahmr_checkpoint", "smpl_dir", "real_3dpw_dir", "real_emdb_dir",
           "real_calib_dir", "real_amass_dir"),
    "01": ("real_checkpoint", "real_camerahmr_checkpoint", "smpl_dir", "real_3dpw_dir", "real_emdb_dir"),
    "02": ("real_checkpoint", "smpl_dir", "real_calib_dir", "real_emdb_dir"),
    "03": ("real_checkpoint", "smpl_dir", "real_emdb_dir"),
    "04": ("real_checkpoint", "smpl_dir", "real_3dpw_dir", "real_amass_dir"),
    "05": ("real_checkpoint", "smpl_dir", "real_3dpw_dir", "real_emdb_dir"),
}  # fmt: skip
_NOTEBOOK_SPLITS = {"00": {"real_3dpw_dir": ("train", "test")}, "04": {"real_3dpw_dir": ("train", "test")}}
_PROTOCOL_PARAMS = ("protocol", "protocol_3dpw", "protocol_emdb", "selection_protocol")


def for_notebook(notebook: str, namespace: Mapping[str, Any]) -> PaperInputs:
    """:func:`resolve` with notebook ``notebook``'s needs (:data:`NOTEBOOK_NEEDS`) and its parameters
    from ``namespace`` (the notebook's ``globals()``): ``data_source``, the input paths, ``real_arch``,
    ``real_mask_kind``, ``selection_split`` (the calibration split) and the protocols (a ``wham*``
    protocol makes ``h36m_regressor`` required; otherwise it is checked only when set). A resolved
    ``h36m_regressor`` is exported as ``FASTHMR_H36M_REGRESSOR`` for this process (the metrics read it)."""
    if notebook not in NOTEBOOK_NEEDS:
        raise ValueError(f"unknown notebook {notebook!r}; expected one of {sorted(NOTEBOOK_NEEDS)}")
    needs = list(NOTEBOOK_NEEDS[notebook])
    protocols = [str(namespace[p]) for p in _PROTOCOL_PARAMS if p in namespace]
    if any(p.startswith("wham") for p in protocols):
        needs.append("h36m_regressor")
    splits = dict(_NOTEBOOK_SPLITS.get(notebook, {}))
    if "selection_split" in namespace:
        splits["real_calib_dir"] = str(namespace["selection_split"])
    inp = resolve(
        str(namespace.get("data_source", "embedded")),
        given_from(namespace),
        needs,
        optional=("h36m_regressor",),
        splits=splits,
        arch=str(namespace.get("real_arch", "")),
        mask_kind=str(namespace.get("real_mask_kind", BOX_MASK)),
    )
    regressor = inp.paths.get("h36m_regressor")
    if regressor is not None:
        # The wham_* metrics find the regressor through FASTHMR_H36M_REGRESSOR
        # (eval.metrics.load_h36m_regressor): a path given as a parameter is exported for this kernel.
        os.environ[ENV_VARS["h36m_regressor"]] = str(regressor)
    return inp


def summary_rows(inp: PaperInputs) -> list[dict[str, Any]]:
    """One row per resolved input: parameter, environment variable, path, and for record roots the
    source, clips and frames per split (from ``meta.json``) and whether the clips carry masks."""
    rows = []
    for row in inp.inventory():
        meta_path = Path(row["path"]) / "meta.json"
        if meta_path.is_file():
            meta = json.loads(meta_path.read_text())
            row["source"] = meta.get("source", "")
            row["clips"] = {s: len(v) for s, v in meta.get("splits", {}).items()}
            row["frames"] = meta.get("frames", {})
            row["masks"] = meta.get("masks", "")
        else:
            row["MB"] = (
                round(Path(row["path"]).stat().st_size / 1e6, 1) if Path(row["path"]).is_file() else ""
            )
        rows.append(row)
    return rows
