"""SMPL body model with HMR2.0's 44-joint layout, read without chumpy.

Layout (4D-Humans ``hmr2/models/smpl_wrapper.py``): smplx's SMPL gives 24 skeleton joints + 21
vertex-picked joints (nose, eyes, ears, 6 foot points, 10 finger tips) = 45; ``joint_map`` picks
OpenPose BODY_25 order from those, then the 19 "J19" joints regressed from the vertices
(``SMPL_to_J19``) are appended: 25 + 19 = 44; index 39 (= 25 + 14, J19's MPII pelvis) is the pelvis.

A body-model folder holds (real SMPL or the embedded model built by ``data_prep/build_body_model.py``):

* ``SMPL_NEUTRAL.npz`` (keys ``v_template`` (V,3), ``shapedirs`` (V,3,10), ``posedirs`` (V,3,207),
  ``J_regressor`` (24,V), ``weights`` (V,24), ``kintree_table`` (2,24), ``f`` (F,3)) — or the official
  ``SMPL_NEUTRAL.pkl`` (chumpy objects inside), converted once to ``.npz`` in the user's cache by
  :func:`convert_smpl_pkl` (the newest of the files present is used);
  ``basicmodel_neutral_lbs_10_207_0_v1.1.0.pkl`` / ``basicModel_neutral_lbs_10_207_0_v1.0.0.pkl`` are
  accepted under their download names too (``m`` / ``f`` for male / female);
* ``SMPL_to_J19.pkl`` (a pickled (19, V) numpy array, latin1) or ``SMPL_to_J19.npy``; for a real SMPL folder
  it may also sit in the parent folder (4D-Humans keeps it in ``data/``);
* optional ``SMPL_mean_params.npz`` / ``smpl_mean_params.npz`` (head initialisation: ``pose`` 144, ``shape``
  10, ``cam`` 3);
* optional ``vertex_picks.json``: the 21 extra-joint vertex ids, a JSON object with smplx's names
  ``{"nose", "reye", "leye", "rear", "lear", "LBigToe", "LSmallToe", "LHeel", "RBigToe", "RSmallToe",
  "RHeel", "lthumb", "lindex", "lmiddle", "lring", "lpinky", "rthumb", "rindex", "rmiddle", "rring",
  "rpinky"}`` -> int. Absent: smplx's SMPL-H ids (correct for real SMPL topology).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pickle
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import roma
import smplx
import torch
from smplx.lbs import vertices2joints
from smplx.utils import Struct
from smplx.vertex_ids import vertex_ids as SMPLX_VERTEX_IDS
from torch import Tensor

from .. import paths

# OpenPose BODY_25 from smplx's 45 SMPL joints (4D-Humans ``smpl_to_openpose``).
SMPL_TO_OPENPOSE = (
    24,
    12,
    17,
    19,
    21,
    16,
    18,
    20,
    0,
    2,
    5,
    8,
    1,
    4,
    7,
    25,
    26,
    27,
    28,
    29,
    30,
    31,
    32,
    33,
    34,
)
NUM_JOINTS44 = 44
PELVIS_INDEX = 39  # 25 OpenPose + J19 index 14 (MPII pelvis)
VERTEX_PICK_NAMES = (
    "nose", "reye", "leye", "rear", "lear", "LBigToe", "LSmallToe", "LHeel", "RBigToe", "RSmallToe", "RHeel",
    "lthumb", "lindex", "lmiddle", "lring", "lpinky", "rthumb", "rindex", "rmiddle", "rring", "rpinky",
)  # fmt: skip
SMPL_KEYS = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f")
_GENDER_CODE = {"neutral": "neutral", "male": "m", "female": "f"}


class BodyModelNotFound(FileNotFoundError):
    """No usable SMPL-format body model in the folder asked for."""


def _missing_model_message(folder: Path, gender: str, what: str) -> str:
    return (
        f"{what} in {folder}.\n"
        f"To use the real SMPL model: register at https://smpl.is.tue.mpg.de, download 'SMPL for Python' "
        f"and put the {gender} model there as SMPL_{gender.upper()}.pkl (e.g. rename "
        f"basicmodel_neutral_lbs_10_207_0_v1.1.0.pkl); also copy SMPL_to_J19.pkl (from 4D-Humans' "
        f"hmr2_data.tar.gz, data/SMPL_to_J19.pkl) next to it. Point the workbook at that folder with "
        f"smpl_dir=... or the FASTHMR_SMPL_DIR environment variable. The .pkl needs no chumpy: it is "
        f"converted once to SMPL_{gender.upper()}.npz.\n"
        f"Alternative: the workbook's embedded SMPL-format body model (no licence needed), built by "
        f"`python data_prep/build_body_model.py` into {paths.embedded_body_dir()} and used when no "
        f"SMPL folder is given."
    )


def _model_candidates(folder: Path, gender: str) -> list[Path]:
    g = gender.upper()
    c = _GENDER_CODE[gender]
    return [
        folder / f"SMPL_{g}.npz",
        folder / f"SMPL_{g}.pkl",
        folder / f"basicmodel_{c}_lbs_10_207_0_v1.1.0.pkl",
        folder / f"basicModel_{c}_lbs_10_207_0_v1.0.0.pkl",
    ]


def _check_gender(gender: str) -> str:
    gender = gender.lower()
    if gender not in _GENDER_CODE:
        raise ValueError(f"gender must be one of {sorted(_GENDER_CODE)}, got {gender!r}")
    return gender


def resolve_smpl_dir(smpl_dir: str | os.PathLike | None = None, gender: str = "neutral") -> Path:
    """Body-model folder: ``smpl_dir`` > ``$FASTHMR_SMPL_DIR`` > the embedded model
    (``paths.embedded_body_dir()``). Raises :class:`BodyModelNotFound` (with set-up instructions)
    when the folder holds no SMPL-format model of that gender."""
    gender = _check_gender(gender)
    if smpl_dir is not None:
        folder, origin = Path(smpl_dir).expanduser().resolve(), "smpl_dir argument"
    elif paths.smpl_dir() is not None:
        folder, origin = paths.smpl_dir(), "FASTHMR_SMPL_DIR"
    else:
        folder, origin = paths.embedded_body_dir(), "embedded body model"
    if not folder.is_dir():
        raise BodyModelNotFound(
            _missing_model_message(folder, gender, f"Body-model folder ({origin}) not found")
        )
    if not any(p.is_file() for p in _model_candidates(folder, gender)):
        raise BodyModelNotFound(
            _missing_model_message(folder, gender, f"No SMPL_{gender.upper()}.npz or .pkl ({origin})")
        )
    return folder


# ---------------------------------------------------------------------------------------------
# chumpy-free reading of the official SMPL pickles


class _Stand:
    """Inert stand-in for a pickled chumpy / scipy.sparse object: remembers its class name, the
    constructor arguments and the pickled state; :func:`_to_numpy` turns it into an array."""

    source = "?"
    args: tuple = ()
    state: dict = {}  # replaced (never mutated) by __setstate__

    def __init__(self, *args: Any, **kw: Any):
        self.args = args

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2:  # (dict_state, slot_state)
            state = {**(state[0] or {}), **(state[1] or {})}
        self.state = dict(state) if isinstance(state, dict) else {"_state": state}

    def __reduce__(self):  # never re-pickled
        raise TypeError("stand-in objects are not picklable")


def _stand_in_class(module: str, name: str) -> type:
    return type(name, (_Stand,), {"source": f"{module}.{name}", "__module__": __name__})


_NUMPY_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
}  # fmt: skip
_BUILTINS = {"object", "set", "frozenset", "dict", "list", "tuple", "slice", "complex", "bytearray"}


class SafeSMPLUnpickler(pickle.Unpickler):
    """Unpickler for SMPL-style pickles that imports nothing but numpy's array reconstruction:
    chumpy classes (``chumpy.ch.Ch``, ``chumpy.reordering.*``, ...) and ``scipy.sparse`` matrices
    become inert :class:`_Stand` objects; any other global raises ``pickle.UnpicklingError``."""

    def find_class(self, module: str, name: str) -> Any:
        if module.startswith("chumpy") or module.startswith("scipy.sparse"):
            return _stand_in_class(module, name)
        if (module, name) in _NUMPY_GLOBALS:
            return super().find_class(module.replace("numpy.core", "numpy._core"), name)
        if module == "_codecs" and name == "encode":  # bytes in protocol-2 pickles written by Python 3
            import codecs

            return codecs.encode
        if module in ("copy_reg", "copyreg") and name == "_reconstructor":
            import copyreg

            return copyreg._reconstructor
        if module in ("builtins", "__builtin__") and name in _BUILTINS:
            import builtins

            return getattr(builtins, name)
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name} from an SMPL-style pickle")


def _sparse_to_dense(obj: _Stand) -> np.ndarray:
    s = obj.state
    shape = tuple(s.get("_shape", s.get("shape", ())))
    fmt = obj.source.rsplit(".", 1)[-1][:3]
    if fmt not in ("csc", "csr", "coo") or len(shape) != 2:
        raise ValueError(f"unsupported sparse matrix {obj.source} in SMPL pickle")
    data = np.asarray(s["data"], np.float64)
    out = np.zeros(shape, np.float64)
    if fmt == "coo":
        np.add.at(out, (np.asarray(s["row"]), np.asarray(s["col"])), data)
        return out
    indptr, indices = np.asarray(s["indptr"]), np.asarray(s["indices"])
    for j in range(len(indptr) - 1):  # j = column (csc) or row (csr)
        sl = slice(indptr[j], indptr[j + 1])
        if fmt == "csc":
            np.add.at(out[:, j], indices[sl], data[sl])
        else:
            np.add.at(out[j], indices[sl], data[sl])
    return out


def _to_numpy(obj: Any, key: str = "?") -> Any:
    """Evaluate a stand-in to a numpy array (chumpy ``Ch`` -> its ``x``; reorderings applied)."""
    if not isinstance(obj, _Stand):
        return obj
    src, s = obj.source, obj.state
    if src.startswith("scipy.sparse"):
        return _sparse_to_dense(obj)
    cls = src.rsplit(".", 1)[-1]
    if "x" in s and cls in ("Ch", "AtleastNd"):
        return np.asarray(_to_numpy(s["x"], key))
    if "a" in s:  # chumpy.reordering.*: value computed from the child ``a``
        a = np.asarray(_to_numpy(s["a"], key))
        if cls == "transpose":
            return np.transpose(a, s.get("axes"))
        if cls == "Reshape":
            return np.reshape(a, s["newshape"])
        if cls == "Select":
            r = a.ravel()[np.asarray(s["idxs"])]
            shp = s.get("preferred_shape")
            return r.reshape(shp) if shp is not None else r
        if cls == "Reorder" or cls == "Permute":
            return a
    raise ValueError(f"SMPL pickle key {key!r}: cannot evaluate chumpy object {src} without chumpy")


def read_smpl_pkl(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read an official SMPL ``.pkl`` (Python-2 pickle with chumpy arrays) without chumpy.

    Returns the numeric arrays smplx needs (:data:`SMPL_KEYS`, dense float64 / int) plus ``J`` when
    present. Raises ``ValueError`` naming the file and the problem."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            raw = SafeSMPLUnpickler(fh, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as e:
        raise ValueError(f"{path}: not a readable SMPL model pickle ({e})") from e
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a dict of SMPL arrays, got {type(raw).__name__}")
    missing = [k for k in SMPL_KEYS if k not in raw]
    if missing:
        raise ValueError(f"{path}: SMPL model pickle lacks keys {missing} (expected {list(SMPL_KEYS)})")
    out = {}
    for k in (*SMPL_KEYS, "J"):
        if k in raw:
            out[k] = np.asarray(_to_numpy(raw[k], k))
    out["f"] = out["f"].astype(np.int64)
    out["kintree_table"] = out["kintree_table"].astype(np.int64)
    return out


def _cache_root() -> Path:
    return paths.cache_dir() / "smpl"


def _gender_from_name(name: str) -> str:
    low = name.lower()
    for gender in ("female", "male", "neutral"):  # female first: "male" is inside "female"
        if gender in low or f"_{_GENDER_CODE[gender]}_" in low:
            return gender
    return "neutral"


def convert_smpl_pkl(
    pkl_path: str | os.PathLike, out_path: str | os.PathLike | None = None, gender: str | None = None
) -> Path:
    """Convert an official SMPL ``.pkl`` once to ``SMPL_<GENDER>.npz`` (no chumpy needed).

    By default the ``.npz`` goes to the user's cache, ``<cache>/smpl/<sha256 of the pickle>/`` (see
    ``paths.cache_dir``), never into the user's folder; keyed by the pickle's bytes, so a replaced
    pickle is converted again and an unchanged one is converted only once."""
    from ..io import atomic_path, sha256_file  # local import keeps body/ light

    pkl_path = Path(pkl_path)
    if out_path is None:
        out_name = f"SMPL_{(gender or _gender_from_name(pkl_path.name)).upper()}.npz"
        out_path = _cache_root() / sha256_file(pkl_path)[:24] / out_name
        if out_path.is_file():
            return out_path
    out_path = Path(out_path)
    arrays = read_smpl_pkl(pkl_path)
    with atomic_path(out_path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
    return out_path


def _find_model_file(folder: Path, gender: str) -> Path:
    """The folder's model file of ``gender``: of the candidates present (``SMPL_<G>.npz``, ``.pkl``, the
    release's ``basicmodel_*`` names) the most recently modified wins, so a pickle replaced after an
    ``.npz`` was made is the one used; pickles are converted through the cache."""
    present = [c for c in _model_candidates(folder, gender) if c.is_file()]
    if not present:
        raise BodyModelNotFound(
            _missing_model_message(folder, gender, f"No SMPL_{gender.upper()}.npz or .pkl")
        )
    newest = max(present, key=lambda c: c.stat().st_mtime_ns)  # ties: the earlier candidate (.npz)
    return newest if newest.suffix == ".npz" else convert_smpl_pkl(newest, gender=gender)


def load_smpl_arrays(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read ``SMPL_*.npz`` into a dict of arrays, checking keys and shapes (clear errors)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as e:  # zipfile / value errors from a damaged file
        raise ValueError(f"{path}: not a readable SMPL .npz ({e})") from e
    missing = [k for k in SMPL_KEYS if k not in arrays]
    if missing:
        raise ValueError(f"{path}: SMPL .npz lacks keys {missing} (expected {list(SMPL_KEYS)})")
    V = arrays["v_template"].shape[0]
    expect = {
        "v_template": (V, 3), "J_regressor": (24, V), "weights": (V, 24), "kintree_table": (2, 24),
    }  # fmt: skip
    for k, shp in expect.items():
        if tuple(arrays[k].shape) != shp:
            raise ValueError(f"{path}: {k} has shape {arrays[k].shape}, expected {shp}")
    if arrays["shapedirs"].shape[:2] != (V, 3) or arrays["posedirs"].shape[:2] != (V, 3):
        raise ValueError(f"{path}: shapedirs/posedirs must be (V, 3, K) with V = {V}")
    return arrays


def _load_j19(folder: Path, num_vertices: int) -> np.ndarray:
    for base in (folder, folder.parent):
        npy, pkl = base / "SMPL_to_J19.npy", base / "SMPL_to_J19.pkl"
        if npy.is_file():
            reg = np.load(npy, allow_pickle=False)
        elif pkl.is_file():
            with open(pkl, "rb") as fh:
                reg = SafeSMPLUnpickler(fh, encoding="latin1").load()
            reg = np.asarray(_to_numpy(reg, "SMPL_to_J19"))
        else:
            continue
        if reg.shape != (19, num_vertices):
            raise ValueError(
                f"{base}: SMPL_to_J19 regressor has shape {reg.shape}, expected (19, {num_vertices})"
            )
        return reg.astype(np.float32)
    raise BodyModelNotFound(
        _missing_model_message(folder, "neutral", "No SMPL_to_J19.pkl / .npy (J19 regressor)")
    )


def _load_vertex_picks(folder: Path, num_vertices: int) -> dict[str, int]:
    f = folder / "vertex_picks.json"
    if not f.is_file():
        return dict(SMPLX_VERTEX_IDS["smplh"])
    picks = json.loads(f.read_text())
    if not isinstance(picks, dict) or set(VERTEX_PICK_NAMES) - set(picks):
        raise ValueError(
            f"{f}: expected a JSON object with the 21 vertex-pick names {list(VERTEX_PICK_NAMES)}"
        )
    out = {k: int(picks[k]) for k in VERTEX_PICK_NAMES}
    bad = {k: v for k, v in out.items() if not 0 <= v < num_vertices}
    if bad:
        raise ValueError(f"{f}: vertex ids out of range [0, {num_vertices}): {bad}")
    return out


def _find_mean_params(folder: Path) -> Path | None:
    for base in (folder, folder.parent):
        for name in ("SMPL_mean_params.npz", "smpl_mean_params.npz"):
            if (base / name).is_file():
                return base / name
    return None


class SMPLBody(smplx.SMPLLayer):
    """smplx ``SMPLLayer`` + HMR2.0's 44-joint layout.

    Buffers use 4D-Humans' names (``joint_map`` (25,), ``joint_regressor_extra`` (19, V)) next to smplx's
    (``v_template``, ``shapedirs``, ``posedirs``, ``J_regressor``, ``lbs_weights``, ``parents``,
    ``faces_tensor``, ``vertex_joint_selector.extra_joints_idxs``).

    Attributes:
        faces: (F, 3) int64 triangle indices.
        num_vertices: V (6890 for SMPL).
        mean_params: dict pose/shape/cam for the head, or ``None`` if the folder has none.
        source_dir: folder the model came from.
    """

    def __init__(
        self,
        arrays: dict[str, np.ndarray],
        j19: np.ndarray,
        vertex_picks: dict[str, int] | None = None,
        mean_params: dict[str, np.ndarray] | None = None,
        gender: str = "neutral",
        source_dir: Path | None = None,
    ):
        data = Struct(**{k: arrays[k] for k in SMPL_KEYS})
        with contextlib.redirect_stdout(io.StringIO()):  # smplx prints a note about 10 betas
            super().__init__(
                model_path=str(source_dir or "."),
                data_struct=data,
                gender=gender,
                num_betas=10,
                vertex_ids=vertex_picks or dict(SMPLX_VERTEX_IDS["smplh"]),
            )
        self.faces = np.asarray(arrays["f"], np.int64)
        self.num_vertices = int(arrays["v_template"].shape[0])
        self.mean_params = mean_params
        self.source_dir = source_dir
        self.register_buffer("joint_map", torch.tensor(SMPL_TO_OPENPOSE, dtype=torch.long))
        self.register_buffer("joint_regressor_extra", torch.as_tensor(j19, dtype=torch.float32))

    def forward(  # type: ignore[override]
        self, global_orient: Tensor, body_pose: Tensor, betas: Tensor, transl: Tensor | None = None
    ) -> dict[str, Tensor]:
        """global_orient (B,3,3) or (B,1,3,3), body_pose (B,23,3,3) rotation matrices, betas (B,10),
        transl (B,3) metres or None.

        Returns ``vertices`` (B,V,3), ``joints24`` (B,24,3) SMPL skeleton joints, ``joints44`` (B,44,3)
        HMR2.0 layout (OpenPose-25 + J19, pelvis index 39); all in metres, translated by ``transl``."""
        B = betas.shape[0]
        dtype = self.shapedirs.dtype
        out = super().forward(
            betas=betas.to(dtype),
            global_orient=global_orient.reshape(B, 1, 3, 3).to(dtype),
            body_pose=body_pose.reshape(B, -1, 3, 3).to(dtype),
            transl=None if transl is None else transl.to(dtype),
            pose2rot=False,
        )
        joints45 = out.joints
        extra = vertices2joints(self.joint_regressor_extra, out.vertices)
        return {
            "vertices": out.vertices,
            "joints24": joints45[:, :24],
            "joints44": torch.cat([joints45[:, self.joint_map], extra], dim=1),
        }

    def from_axis_angle(self, pose: Tensor, betas: Tensor, transl: Tensor | None = None) -> dict[str, Tensor]:
        """pose (B,72) or (B,24,3) axis-angle (global orient first), betas (B,10) -> see :meth:`forward`."""
        R = roma.rotvec_to_rotmat(pose.reshape(pose.shape[0], 24, 3))
        return self.forward(R[:, :1], R[:, 1:], betas, transl)


def per_frame_betas(betas: Tensor, T: int) -> Tensor:
    """(K,) or (T, K) shape coefficients -> (T, K)."""
    if betas.ndim == 1:
        betas = betas[None].expand(T, -1)
    if betas.ndim != 2 or betas.shape[0] != T:
        raise ValueError(f"betas must be (K,) or ({T},K), got {tuple(betas.shape)}")
    return betas


def load_mean_params(path: str | Path) -> dict[str, np.ndarray]:
    """Read ``SMPL_mean_params.npz`` / ``smpl_mean_params.npz``: ``pose`` (144,) 6D, ``shape`` (10,),
    ``cam`` (3,). Raises ``ValueError`` naming the file and the missing key."""
    path = Path(path)
    with np.load(path) as z:
        out = {}
        for key in ("pose", "shape", "cam"):
            if key not in z.files:
                raise ValueError(f"{path}: mean-parameter file lacks key {key!r} (expected pose/shape/cam)")
            out[key] = np.asarray(z[key], np.float32).reshape(-1)
    return out


def load_body_model(
    smpl_dir: str | os.PathLike | None = None, gender: str = "neutral", device: str | torch.device = "cpu"
) -> SMPLBody:
    """Build :class:`SMPLBody` from a body-model folder (see :func:`resolve_smpl_dir` and the module
    docstring for the files it reads)."""
    gender = _check_gender(gender)
    folder = resolve_smpl_dir(smpl_dir, gender)
    arrays = load_smpl_arrays(_find_model_file(folder, gender))
    V = arrays["v_template"].shape[0]
    mp_path = _find_mean_params(folder)
    mean_params = None
    if mp_path is not None:
        mean_params = load_mean_params(mp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        body = SMPLBody(
            arrays,
            _load_j19(folder, V),
            vertex_picks=_load_vertex_picks(folder, V),
            mean_params=mean_params,
            gender=gender,
            source_dir=folder,
        )
    return body.to(device)


def normalize_gender(g: object) -> str:
    """'m'/'male' -> 'male', 'f'/'female' -> 'female', anything else -> 'neutral' (bytes are decoded, a
    numpy array gives its first element, as pickled dataset fields hold them)."""
    if isinstance(g, np.ndarray):
        g = g.reshape(-1)[0] if g.size else ""
    if isinstance(g, bytes):
        g = g.decode("utf-8", "replace")
    s = str(g).strip().lower()
    return {"m": "male", "male": "male", "f": "female", "female": "female"}.get(s, "neutral")


class GenderedBodies:
    """SMPL-format body models per gender from one folder, loaded on first use with :func:`load_body_model`;
    a gender whose model file is absent (e.g. the embedded model is neutral only) falls back to the neutral
    model (recorded in :attr:`fallbacks`). Ground truth of 3DPW / EMDB is posed with the subject's gendered
    model (as their annotations and WHAM's evaluation do)."""

    def __init__(self, smpl_dir: str | os.PathLike | None = None, device: str | torch.device = "cpu"):
        self.smpl_dir = smpl_dir
        self.device = device
        self._models: dict[str, tuple[SMPLBody, str]] = {}
        self.fallbacks: set[str] = set()

    def get(self, gender: str = "neutral") -> tuple[SMPLBody, str]:
        """(body model, the gender actually used)."""
        gender = normalize_gender(gender)
        if gender not in self._models:
            try:
                self._models[gender] = (load_body_model(self.smpl_dir, gender, self.device).eval(), gender)
            except BodyModelNotFound:
                if gender == "neutral":
                    raise
                self.fallbacks.add(gender)
                self._models[gender] = (self.get("neutral")[0], "neutral")
        return self._models[gender]
