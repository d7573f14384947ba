"""Format-faithful stand-ins for every input of the paper path (tests and users: one maker per format).

``python -m data_prep.paper_standins OUT [--frames 24] [--seed 0]`` writes, under ``OUT``:

* ``raw/smpl/`` -- an SMPL folder as the official release + 4D-Humans ship it: ``SMPL_NEUTRAL.pkl`` (a
  Python-2 pickle of chumpy ``Ch`` objects with a scipy csc ``J_regressor``), ``SMPL_mean_params.npz``,
  ``SMPL_to_J19.npy``; random geometry of SMPL's sizes (6890 vertices, 24 joints), not a human body.
* ``raw/hmr2/logs/train/multiruns/hmr2/0/checkpoints/epoch=35-step=1000000.ckpt`` + ``model_config.yaml``
  two folders up -- the 4D-Humans release layout (Lightning dict: ``state_dict`` with ``backbone.*``,
  ``smpl_head.*``, ``discriminator.*``, ``initialized``; ``hyper_parameters`` holding a yacs ``CfgNode``);
  weights of the ``tiny`` preset width (load with ``cfg="tiny"``, i.e. ``real_arch: tiny``).
* ``raw/camerahmr/data/pretrained-models/camerahmr_checkpoint_cleaned.ckpt`` -- CameraHMR's layout
  (``state_dict`` with ``backbone.*``, ``smpl_head.*`` incl. ``deckp``, ``cam_model.*``), tiny width.
* ``raw/3dpw/`` -- ``sequenceFiles/{train,validation,test}/*.pkl`` (3DPW's fields, Python-2 pickles) and
  ``imageFiles/<seq>/image_%05d.jpg``; ``raw/emdb/P<k>/<seq>/{P<k>_<seq>_data.pkl, images/%05d.jpg}``;
  ``raw/amass/<dataset>/<subject>/*_poses.npz`` (SMPL+H G fields); ``raw/J_regressor_h36m.npy`` (17, 6890).
* ``records/{3dpw,emdb,amass}/`` -- the raw stand-ins converted with ``data_prep.convert_{3dpw,emdb,amass}``
  exactly as a user converts the real datasets (see the README's paper-path section).

It prints the ``FASTHMR_*`` variables that point the ``paper`` profile at them. The makers below are the
ones the test suite uses (``tests/conftest.py``, ``tests/test_body_smpl.py``,
``tests/test_data_convert.py``, ``tests/test_models_checkpoints.py``, ``tests/test_paper_smoke.py``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import pickle
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

NUM_VERTICES = 6890
NUM_FACES = 13776
SMPL_PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21]
PICK_NAMES = (
    "nose", "reye", "leye", "rear", "lear", "LBigToe", "LSmallToe", "LHeel", "RBigToe", "RSmallToe", "RHeel",
    "lthumb", "lindex", "lmiddle", "lring", "lpinky", "rthumb", "rindex", "rmiddle", "rring", "rpinky",
)  # fmt: skip
K640 = np.array([[500.0, 0.0, 320.0], [0.0, 520.0, 240.0], [0.0, 0.0, 1.0]])
HMR2_CKPT = "logs/train/multiruns/hmr2/0/checkpoints/epoch=35-step=1000000.ckpt"  # 4D-Humans release path
CAMERAHMR_CKPT = "data/pretrained-models/camerahmr_checkpoint_cleaned.ckpt"  # CameraHMR release path

# ------------------------------------------------------------------------------------------- SMPL


def fake_smpl_arrays(seed: int = 0) -> dict[str, np.ndarray]:
    """The smplx model arrays of a random SMPL-topology-sized body (float64 like the official files)."""
    rng = np.random.default_rng(seed)
    V = NUM_VERTICES
    v = rng.uniform([-0.3, -0.9, -0.15], [0.3, 0.8, 0.15], size=(V, 3))
    J_reg = np.zeros((24, V))
    for j in range(24):
        idx = rng.choice(V, size=40, replace=False)
        J_reg[j, idx] = rng.dirichlet(np.ones(40))
    joints = J_reg @ v
    d = ((v[:, None] - joints[None]) ** 2).sum(-1)
    w = np.exp(-d / 0.02)
    w /= w.sum(1, keepdims=True)
    return {
        "v_template": v,
        "shapedirs": rng.normal(0, 0.01, size=(V, 3, 10)),
        "posedirs": rng.normal(0, 0.001, size=(V, 3, 207)),
        "J_regressor": J_reg,
        "weights": w,
        "kintree_table": np.stack([np.array(SMPL_PARENTS), np.arange(24)]).astype(np.int64),
        "f": rng.integers(0, V, size=(NUM_FACES, 3)).astype(np.int64),
    }


def _convex_rows(rng: np.random.Generator, rows: int, picks: int) -> np.ndarray:
    reg = np.zeros((rows, NUM_VERTICES), np.float32)
    for j in range(rows):
        idx = rng.choice(NUM_VERTICES, size=picks, replace=False)
        reg[j, idx] = rng.dirichlet(np.ones(picks))
    return reg


def fake_j19(seed: int = 0) -> np.ndarray:
    """(19, 6890) regressor (4D-Humans' ``SMPL_to_J19.npy`` shape), rows convex over 30 vertices."""
    return _convex_rows(np.random.default_rng(seed + 1), 19, 30)


def fake_h36m_regressor(seed: int = 0) -> np.ndarray:
    """(17, 6890) regressor (the shape of ``J_regressor_h36m.npy`` used by SPIN / WHAM)."""
    return _convex_rows(np.random.default_rng(seed + 4), 17, 30)


def fake_mean_params(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed + 2)
    pose = np.tile(np.array([1, 0, 0, 0, 1, 0], np.float32), 24) + rng.normal(0, 0.05, 144).astype(np.float32)
    return {"pose": pose, "shape": np.zeros(10, np.float32), "cam": np.array([0.9, 0.0, 0.0], np.float32)}


def fake_vertex_picks(seed: int = 0) -> dict[str, int]:
    rng = np.random.default_rng(seed + 3)
    ids = rng.choice(NUM_VERTICES, size=len(PICK_NAMES), replace=False)
    return {n: int(i) for n, i in zip(PICK_NAMES, ids)}


@contextlib.contextmanager
def temporary_modules(mods: dict[str, types.ModuleType]) -> Iterator[None]:
    """Put ``mods`` into ``sys.modules`` for the block (so pickle records their classes), then restore."""
    old = {k: sys.modules.get(k) for k in mods}
    sys.modules.update(mods)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


def fake_chumpy_modules() -> dict[str, types.ModuleType]:
    """Stand-in ``chumpy.ch.Ch`` / ``chumpy.reordering.transpose`` classes with chumpy's names and state."""
    ch = types.ModuleType("chumpy.ch")
    reordering = types.ModuleType("chumpy.reordering")

    class Ch:  # like chumpy.ch.Ch: value in ``x``, weak-ref caches dropped in __getstate__
        dterms = ["x"]

        def __init__(self, x):
            self.x = np.asarray(x)
            self._dirty_vars = set()
            self._itr = None
            self._make_dense = False
            self._make_sparse = False
            self._parents = {}
            self._cache = {"r": None}

        def __getstate__(self):
            d = dict(self.__dict__)
            del d["_parents"], d["_cache"]
            return d

    class transpose(Ch):  # noqa: N801  (chumpy's class name)
        def __init__(self, a, axes):
            self.a, self.axes = a, axes
            self._dirty_vars, self._itr, self._parents, self._cache = set(), None, {}, {}

    Ch.__module__, Ch.__qualname__ = "chumpy.ch", "Ch"
    transpose.__module__, transpose.__qualname__ = "chumpy.reordering", "transpose"
    ch.Ch, reordering.transpose = Ch, transpose
    root = types.ModuleType("chumpy")
    root.ch, root.reordering = ch, reordering
    return {"chumpy": root, "chumpy.ch": ch, "chumpy.reordering": reordering}


def write_chumpy_smpl_pkl(path: str | Path, seed: int = 0, shift: float = 0.0) -> dict[str, np.ndarray]:
    """Write ``path`` the way the official ``SMPL_NEUTRAL.pkl`` is stored (Python-2 pickle protocol 2,
    chumpy arrays, ``posedirs`` inside a ``chumpy.reordering.transpose`` node, scipy csc regressors);
    returns the plain arrays it encodes (``v_template`` shifted by ``shift`` m)."""
    import scipy.sparse

    a = fake_smpl_arrays(seed)
    a["v_template"] = a["v_template"] + shift
    mods = fake_chumpy_modules()
    with temporary_modules(mods):
        Ch, transpose = mods["chumpy.ch"].Ch, mods["chumpy.reordering"].transpose
        data = {
            "v_template": Ch(a["v_template"]),
            "shapedirs": Ch(a["shapedirs"]),
            "posedirs": transpose(Ch(np.transpose(a["posedirs"], (2, 0, 1))), (1, 2, 0)),
            "J_regressor": scipy.sparse.csc_matrix(a["J_regressor"]),
            "J_regressor_prior": scipy.sparse.csc_matrix(a["J_regressor"]),
            "weights": Ch(a["weights"]),
            "kintree_table": a["kintree_table"].astype(np.uint32),
            "f": a["f"].astype(np.uint32),
            "J": Ch(a["J_regressor"] @ a["v_template"]),
            "bs_style": "lbs",
            "bs_type": "lrotmin",
        }
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as fh:
            pickle.dump(data, fh, protocol=2)
    return a


def write_smpl_dir(folder: str | Path, seed: int = 0, picks: bool = True, model_format: str = "npz") -> Path:
    """A fake SMPL-format folder: the model as ``SMPL_NEUTRAL.npz`` (``model_format="npz"``) or as the
    release's chumpy pickle ``SMPL_NEUTRAL.pkl`` (``"pkl"``), plus ``SMPL_mean_params.npz``,
    ``SMPL_to_J19.npy`` and (``picks``) ``vertex_picks.json``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if model_format == "npz":
        np.savez(folder / "SMPL_NEUTRAL.npz", **fake_smpl_arrays(seed))
    elif model_format == "pkl":
        write_chumpy_smpl_pkl(folder / "SMPL_NEUTRAL.pkl", seed)
    else:
        raise ValueError(f"write_smpl_dir: model_format must be 'npz' or 'pkl', got {model_format!r}")
    np.savez(folder / "SMPL_mean_params.npz", **fake_mean_params(seed))
    np.save(folder / "SMPL_to_J19.npy", fake_j19(seed))
    if picks:
        (folder / "vertex_picks.json").write_text(json.dumps(fake_vertex_picks(seed), indent=1))
    return folder


# ------------------------------------------------------------------------------------ checkpoints


def released_state_dict(model: Any, extra_prefixes: tuple[str, ...] = ("discriminator.",)) -> dict:
    """``model``'s state dict under the released key names (``head.`` -> ``smpl_head.``) plus two tensors
    under each of ``extra_prefixes`` (the sub-networks the release files also carry)."""
    import torch

    sd = {}
    for k, v in model.state_dict().items():
        if k.startswith("head."):
            k = "smpl_head." + k[5:]
        sd[k] = v.clone()  # backbone.*, smpl_head.*, smpl.* (body buffers, as Lightning saves them)
    for p in extra_prefixes:
        sd[p + "D_conv1.weight"] = torch.randn(32, 9, 1, 1)
        sd[p + "D_conv1.bias"] = torch.randn(32)
    return sd


def fake_yacs() -> tuple[dict[str, types.ModuleType], type]:
    """A stand-in ``yacs.config.CfgNode`` class, so a made checkpoint holds a config object as the
    released one does (loading must not need yacs)."""
    root, sub = types.ModuleType("yacs"), types.ModuleType("yacs.config")

    class CfgNode(dict):
        pass

    CfgNode.__module__, CfgNode.__qualname__ = "yacs.config", "CfgNode"
    sub.CfgNode, root.config = CfgNode, sub
    return {"yacs": root, "yacs.config": sub}, CfgNode


def write_4dhumans_release(root: str | Path, model: Any, head_depth: int | None = None) -> tuple[Path, dict]:
    """Write ``model`` (an :class:`~fasthmr_lib.models.hmr.HMR`) as 4D-Humans releases HMR 2.0: the ``.ckpt``
    at :data:`HMR2_CKPT` under ``root`` and ``model_config.yaml`` two folders above it (the head sizes of
    ``model``, or ``head_depth`` to make a mismatching file). Returns (ckpt path, state dict written)."""
    import torch
    import yaml

    run = Path(root) / Path(HMR2_CKPT).parent.parent
    ckpt = Path(root) / HMR2_CKPT
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    h = model.cfg.head
    td = {"depth": head_depth or h.depth, "heads": h.heads, "mlp_dim": h.mlp_dim, "dim_head": h.dim_head,
          "dropout": 0.0, "emb_dropout": 0.0, "norm": "layer", "context_dim": h.context_dim}  # fmt: skip
    model_cfg = {
        "MODEL": {"IMAGE_SIZE": 256, "BBOX_SHAPE": [192, 256], "BACKBONE": {"TYPE": "vit"}, "SMPL_HEAD": {
            "TYPE": "transformer_decoder", "IN_CHANNELS": 2048, "TRANSFORMER_DECODER": td}},
        "SMPL": {"MODEL_PATH": "data/smpl", "GENDER": "neutral", "NUM_BODY_JOINTS": 23},
        "EXTRA": {"FOCAL_LENGTH": 5000, "PELVIS_IND": 39},
        "LOSS_WEIGHTS": {"ADVERSARIAL": 0.0005},
    }  # fmt: skip
    (run / "model_config.yaml").write_text(yaml.safe_dump(model_cfg))
    sd = released_state_dict(model)
    sd["initialized"] = torch.tensor(False)
    mods, CfgNode = fake_yacs()
    with temporary_modules(mods):
        pl = {
            "epoch": 35,
            "global_step": 1_000_000,
            "pytorch-lightning_version": "1.8.1",
            "state_dict": sd,
            "hyper_parameters": {"cfg": CfgNode(model_cfg)},
            "loops": None,
        }
        torch.save(pl, ckpt)
    return ckpt, sd


def write_camerahmr_release(root: str | Path, model: Any) -> tuple[Path, dict]:
    """Write ``model`` (a box-conditioned HMR) as CameraHMR's ``camerahmr_checkpoint_cleaned.ckpt`` at
    :data:`CAMERAHMR_CKPT` under ``root``. Returns (path, state dict written)."""
    import torch

    path = Path(root) / CAMERAHMR_CKPT
    path.parent.mkdir(parents=True, exist_ok=True)
    sd = released_state_dict(model, extra_prefixes=("cam_model.",))
    torch.save({"state_dict": sd}, path)
    return path, sd


def standin_model(kind: str, body: Any, seed: int = 0) -> Any:
    """A seeded random ``tiny``-width HMR with the head input of ``kind`` ('hmr2' or 'camerahmr')."""
    import torch

    from fasthmr_lib.models.hmr import HMR
    from fasthmr_lib.paper_inputs import arch_config

    torch.manual_seed(seed)
    model = HMR(arch_config(kind, "tiny"), smpl=body).eval()
    with torch.no_grad():  # mean-parameter buffers differ from the body folder's (the release's do too)
        model.head.init_cam.add_(0.05)
    return model


# ---------------------------------------------------------------------------------- datasets


def rot(rv: Any) -> np.ndarray:
    from .convert_common import rotvec_to_rotmat

    return rotvec_to_rotmat(np.asarray(rv, np.float64))


def camera_looking_at(rv: Any, center: Any, dist: float = 4.0) -> tuple[np.ndarray, np.ndarray]:
    """(R, T) world -> camera with the world point ``center`` on the optical axis at ``dist`` m."""
    R = rot(rv)
    return R, np.array([0.0, 0.0, dist]) - R @ np.asarray(center, np.float64)


def smpl_world(rng: np.random.Generator, n: int, center: Any, betas: Any = None) -> tuple:
    """World-frame SMPL parameters of n frames: (pose (n,72), trans (n,3), betas (10,))."""
    pose = np.concatenate([rng.normal(0, 0.5, (n, 3)), rng.normal(0, 0.2, (n, 69))], 1)
    trans = np.asarray(center, np.float64) + rng.normal(0, 0.05, (n, 3))
    return pose, trans, rng.normal(0, 1.0, 10) if betas is None else betas


def write_image(path: str | Path, size: tuple[int, int], value: int = 80) -> None:
    """A flat (W, H) = ``size`` JPEG/PNG at ``path``."""
    import cv2

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), np.full((size[1], size[0], 3), value, np.uint8)):
        raise OSError(f"could not write image {path}")


def dump_pickle(path: str | Path, obj: Any, protocol: int = 2) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    return path


def pw3d_sequence(rng: np.random.Generator, name: str, n: int, genders: list[str], invalid: Any = None,
                  moving: bool = True) -> dict[str, Any]:  # fmt: skip
    """One 3DPW ``sequenceFiles/<split>/<name>.pkl`` dict (fields of 3DPW's readme), n frames, one entry
    per actor in ``genders``; ``invalid`` {actor: [frames]} marks camera poses invalid."""
    poses, trans, betas, valid, p2d = [], [], [], [], []
    for p in range(len(genders)):
        pose, tr, b = smpl_world(rng, n, [0.5 * p - 0.25, 0.1, 0.2])
        poses.append(pose)
        trans.append(tr)
        betas.append(b)
        v = np.ones(n, bool)
        v[list((invalid or {}).get(p, []))] = False
        valid.append(v)
        kp = np.stack(
            [rng.uniform(-20, 700, (n, 18)), rng.uniform(50, 400, (n, 18)), rng.uniform(0, 1, (n, 18))], 1
        )
        kp[:, 2, :4] = 0.0  # 4 keypoints undetected per frame
        p2d.append(kp)
    cams = np.tile(np.eye(4), (n, 1, 1))
    for t in range(n):
        rv = [0.05 * t, 0.4 + (0.1 * t if moving else 0.0), 0.02]
        cams[t, :3, :3], cams[t, :3, 3] = camera_looking_at(rv, [0, 0.1, 0.2], 4.0 + 0.1 * t)
    return {
        "sequence": name,
        "genders": genders,
        "betas": betas,
        "poses": poses,
        "trans": trans,
        "poses2d": p2d,
        "campose_valid": valid,
        "jointPositions": [rng.normal(size=(n, 72)) for _ in range(len(genders))],
        "cam_poses": cams,
        "cam_intrinsics": K640.copy(),
        "img_frame_ids": np.arange(n),
    }


def emdb_sequence(rng: np.random.Generator, name: str, n: int, emdb1: bool, emdb2: bool, good: Any = None,
                  identity: bool = False, gender: str = "female") -> dict[str, Any]:  # fmt: skip
    """One EMDB ``P<k>_<seq>_data.pkl`` dict (fields of eth-ait/emdb ``dataset.md``), n frames, 600x300."""
    pose, trans, betas = smpl_world(rng, n, [0.1, 0.0, 0.3])
    ext = np.tile(np.eye(4), (n, 1, 1))
    if not identity:
        for t in range(n):
            ext[t, :3, :3], ext[t, :3, 3] = camera_looking_at(
                [0.1, -0.3 + 0.05 * t, 0.05], [0.1, 0, 0.3], 3.5
            )
    else:
        trans = trans + [0.0, 0.0, 4.0]
    return {
        "gender": gender,
        "name": name,
        "emdb1": emdb1,
        "emdb2": emdb2,
        "n_frames": n,
        "good_frames_mask": np.ones(n, bool) if good is None else np.asarray(good),
        "camera": {"intrinsics": K640.copy(), "extrinsics": ext, "width": 600, "height": 300},
        "smpl": {"poses_root": pose[:, :3], "poses_body": pose[:, 3:], "trans": trans, "betas": betas},
        "kp2d": rng.normal(size=(n, 24, 2)),
        "bboxes": {
            "bboxes": np.sort(rng.uniform(0, 400, (n, 2, 2)), 1).reshape(n, 4),
            "invalid_idxs": np.array([], np.int64),
        },
    }


def amass_file(path: str | Path, rng: np.random.Generator, T: int, fps: float, smplx: bool = False,
               gender: str = "male") -> dict[str, Any]:  # fmt: skip
    """Write one AMASS sequence ``.npz`` (SMPL+H G ``*_poses.npz`` or SMPL-X N ``*_stageii.npz`` keys)."""
    width = 165 if smplx else 156
    poses = rng.normal(0, 0.4, (T, width))
    trans = np.cumsum(rng.normal(0, 0.02, (T, 3)), 0) + [0.0, 0.0, 0.9]
    z = {"poses": poses, "trans": trans, "betas": rng.normal(0, 1, 16), "gender": np.array(gender)}
    if smplx:
        z |= {"mocap_frame_rate": np.array(fps), "surface_model_type": np.array("smplx")}
    else:
        z |= {"mocap_framerate": np.array(fps), "dmpls": np.zeros((T, 8))}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **z)
    return z


# ------------------------------------------------------------------------------------ whole set


def make_raw(out: str | Path, frames: int = 24, seed: int = 0) -> dict[str, Path]:
    """Write every raw stand-in under ``out`` (see the module docstring); returns their paths by key
    (``smpl_dir``, ``hmr2_checkpoint``, ``camerahmr_checkpoint``, ``3dpw_src``, ``emdb_src``, ``amass_src``,
    ``h36m_regressor``). Every 3DPW / EMDB frame gets its image file."""
    from fasthmr_lib.body.smpl import load_body_model

    out = Path(out)
    rng = np.random.default_rng(seed)
    smpl = write_smpl_dir(out / "smpl", seed, picks=False, model_format="pkl")
    body = load_body_model(smpl)
    hmr2, _ = write_4dhumans_release(out / "hmr2", standin_model("hmr2", body, seed))
    cam, _ = write_camerahmr_release(out / "camerahmr", standin_model("camerahmr", body, seed + 1))
    pw3d = out / "3dpw"
    seqs = {
        "test": [("downtown_walk_00", ["m", "f"]), ("flat_guitar_01", ["f"])],
        "validation": [("courtyard_drinking_00", ["m"])],
        "train": [("outdoors_fencing_01", ["f"])],
    }
    for split, items in seqs.items():
        for name, genders in items:
            dump_pickle(
                pw3d / "sequenceFiles" / split / f"{name}.pkl", pw3d_sequence(rng, name, frames, genders)
            )
            for t in range(frames):
                write_image(pw3d / "imageFiles" / name / f"image_{t:05d}.jpg", (640, 480), 60 + 5 * t % 120)
    emdb = out / "emdb"
    for name, e1, e2 in (("P0_09_outdoor_walk", True, False), ("P2_20_outdoor_walk", True, True),
                         ("P5_40_indoor_walk", False, True)):  # fmt: skip
        k, seq = name.split("_", 1)
        dump_pickle(emdb / k / seq / f"{name}_data.pkl", emdb_sequence(rng, name, frames, e1, e2), protocol=4)
        for t in range(frames):
            write_image(emdb / k / seq / "images" / f"{t:05d}.jpg", (600, 300), 90)
    amass = out / "amass"
    for rel in ("CMU/01/01_01_poses.npz", "CMU/02/02_03_poses.npz", "HumanEva/S1/Walking_1_poses.npz"):
        amass_file(amass / rel, rng, 4 * 2 * frames, 120.0)  # 120 fps -> 2 * frames frames at 30 fps
    np.savez(amass / "CMU/01/shape.npz", betas=np.zeros(16))
    h36m = out / "J_regressor_h36m.npy"
    np.save(h36m, fake_h36m_regressor(seed))
    return {"smpl_dir": smpl, "hmr2_checkpoint": hmr2, "camerahmr_checkpoint": cam, "3dpw_src": pw3d,
            "emdb_src": emdb, "amass_src": amass, "h36m_regressor": h36m}  # fmt: skip


def convert_raw(raw: dict[str, Path], out: str | Path) -> dict[str, Path]:
    """Convert the raw stand-ins with the data_prep converters (as the README tells a user to convert the
    real datasets) into ``out/{3dpw,emdb,amass}``; returns the record roots by key."""
    from . import convert_3dpw, convert_amass, convert_emdb

    out = Path(out)
    convert_3dpw.convert(raw["3dpw_src"], out / "3dpw", smpl_dir=raw["smpl_dir"], progress=False)
    convert_emdb.convert(raw["emdb_src"], out / "emdb", smpl_dir=raw["smpl_dir"], progress=False)
    convert_amass.convert(raw["amass_src"], out / "amass", smpl_dir=raw["smpl_dir"], progress=False)
    return {"3dpw_dir": out / "3dpw", "emdb_dir": out / "emdb", "amass_dir": out / "amass"}


def make_all(out: str | Path, frames: int = 24, seed: int = 0) -> dict[str, str]:
    """Raw stand-ins under ``out/raw``, converted records under ``out/records``; returns the
    ``FASTHMR_*`` environment of the paper path (see :mod:`fasthmr_lib.paper_inputs`)."""
    from fasthmr_lib.paper_inputs import ENV_VARS

    raw = make_raw(Path(out) / "raw", frames, seed)
    rec = convert_raw(raw, Path(out) / "records")
    got = {**raw, **rec}
    keys = {
        "smpl_dir": "smpl_dir",
        "real_checkpoint": "hmr2_checkpoint",
        "real_camerahmr_checkpoint": "camerahmr_checkpoint",
        "real_3dpw_dir": "3dpw_dir",
        "real_emdb_dir": "emdb_dir",
        "real_amass_dir": "amass_dir",
        "h36m_regressor": "h36m_regressor",
    }
    return {ENV_VARS[param]: str(Path(got[k]).resolve()) for param, k in keys.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m data_prep.paper_standins", description=__doc__.split("\n")[0]
    )
    ap.add_argument("out", type=Path, help="folder to write (raw/ and records/ inside)")
    ap.add_argument("--frames", type=int, default=24, help="frames per 3DPW / EMDB sequence")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    env = make_all(args.out, args.frames, args.seed)
    print("# the paper profile's inputs, pointed at the stand-ins (tiny-width checkpoints: real_arch tiny):")
    for k, v in env.items():
        print(f"export {k}={v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
