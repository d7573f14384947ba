"""The deployed FastHMR model: baseline HMR + ECLM windows + Mask-ToMe + the one-step diffusion decoder.

FastHMR (arXiv 2510.10868, Fig. 4) runs, per video:

1. a person box + mask per frame (segmenter; here given by the caller);
2. the person crop of the model's convention (:mod:`fasthmr_lib.models.camera`: HMR2.0's square box ×1.2,
   aspect 192:256, or CameraHMR's box longer side as is; 256×256; the same code as the datasets,
   :func:`fasthmr_lib.data.crops.make_crop`) with the mask warped identically; a CameraHMR model also
   gets each frame's full-image camera (focal length from the caller, HumanFoV or the image diagonal);
3. the per-frame encoder: the backbone shortened by ECLM (§3.2;
   :func:`fasthmr_lib.merging.eclm.apply_windows`, applied **first**) with Mask-ToMe in its first blocks
   (§3.1; ``fasthmr_lib.merging.patch.apply``, applied **second**), then the SMPL head — β and the camera
   come from its linear heads;
4. the diffusion decoder over windows of F head tokens (paper F = 243; shorter videos are resampled to F
   and back, longer ones split — :mod:`fasthmr_lib.diffusion.decoder`) → smooth SMPL θ.

:class:`FastHMR` holds the merged/patched :class:`~fasthmr_lib.models.hmr.HMR` (``.hmr``) and the
:class:`~fasthmr_lib.diffusion.decoder.DiffusionDecoder` (``.decoder``, optional) and saves both as **one
artefact**: ``model.safetensors`` (``hmr.backbone.*``, ``hmr.head.*``, ``decoder.vae.*``,
``decoder.denoiser.*``, ``decoder.stats.*``; fp32 or fp16) + ``fasthmr.json`` (the parts' settings: merged
model config, ECLM windows and rule, Mask-ToMe config, decoder configs, written last). The body model is
not stored (SMPL's licence; it comes from the SMPL folder, as for :mod:`fasthmr_lib.models.checkpoints`).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import roma
import torch
from torch import Tensor, nn

from .body.smpl import SMPLBody, load_body_model
from .config import ModelConfig
from .data.crops import CropRule, crop_to_image_points, make_crop, normalize_image
from .merging import patch
from .merging.patch import MaskToMeConfig
from .models.camera import CropCamera, convention_of, crop_rule_for
from .models.checkpoints import (
    CheckpointError,
    FolderFormat,
    load_state_strict,
    model_config_from,
    model_config_of,
    read_folder_config,
    read_folder_weights,
    write_folder,
)
from .models.hmr import HMR
from .models.humanfov import HumanFoV, focal_lengths
from .models.quantize import CPU_LAYERS, is_int8, quantize_int8

FORMAT_NAME = "fasthmr-model"
FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "fasthmr.json"
FORMAT = FolderFormat(FORMAT_NAME, FORMAT_VERSION, CONFIG_FILE, WEIGHTS_FILE, "FastHMR", "FastHMR.save")
_HMR_PREFIXES = ("backbone.", "head.")
# per-frame outputs of HMR.forward that predict gathers over the video
_FRAME_KEYS = ("rotmat", "betas", "cam", "cam_t", "joints3d", "vertices", "joints2d", "head_token")


def _mask_tome_dict(cfg: MaskToMeConfig | None) -> dict[str, Any] | None:
    if cfg is None:
        return None
    if isinstance(cfg, MaskToMeConfig):
        return cfg.to_dict()
    raise TypeError(f"mask_tome must be a MaskToMeConfig or None, got {type(cfg).__name__}")


def _load_decoder_dir(path: str | Path, smpl: nn.Module, **kw: Any) -> nn.Module:
    from .diffusion.decoder import DiffusionDecoder

    d = Path(path)
    for part in ("vae", "denoiser"):
        if not (d / part / "config.json").is_file():
            raise FileNotFoundError(
                f"decoder folder {d}: expected {d / part}/config.json + model.safetensors "
                "(a trained pair written by fasthmr_lib.diffusion.training; see notebook 04)"
            )
    return DiffusionDecoder.from_checkpoints(d / "vae", d / "denoiser", smpl, **kw)


class FastHMR(nn.Module):
    """ECLM-merged, Mask-ToMe-patched HMR + optional diffusion decoder (see the module docstring).

    Build with :meth:`from_parts` or :meth:`load`; the constructor only stores already-prepared parts.

    Attributes:
        hmr: the per-frame model (:class:`HMR`; ``hmr.backbone.blocks`` already merged, Mask-ToMe installed).
        decoder: :class:`~fasthmr_lib.diffusion.decoder.DiffusionDecoder` or ``None`` (per-frame head only).
        windows: ECLM windows ``[(lo, hi), ...]`` in the baseline's block numbering (``[]``: none).
        rule: ECLM merge rule (``paper`` = Eq. 4).
        mask_tome: the Mask-ToMe config (``MaskToMeConfig``) or ``None`` — read from
            ``hmr.token_merging``, the one place the setting lives.
        baseline_depth: blocks of the baseline before merging.
        int8: the backbone's linear layers run in dynamic int8 (CPU inference; :mod:`.models.quantize`):
            ``True`` quantises the shipped layer set (``CPU_LAYERS``: the MLPs), a string names the set
            (``"all"`` / ``"mlp"``, for lever studies).
    """

    def __init__(
        self,
        hmr: HMR,
        decoder: nn.Module | None = None,
        *,
        windows: Sequence[Sequence[int]] | None = None,
        rule: str = "paper",
        mask_tome: MaskToMeConfig | None = None,
        baseline_depth: int | None = None,
        metadata: dict[str, Any] | None = None,
        int8: bool | str = False,
    ):
        super().__init__()
        if decoder is not None:
            head_dim = hmr.cfg.head.dim
            if decoder.token_dim != head_dim:
                raise ValueError(
                    f"decoder head-token width {decoder.token_dim} != the HMR head-token width {head_dim}: "
                    "the denoiser must be trained on this model's head tokens"
                )
        if mask_tome is not None:
            patch.apply(hmr, mask_tome)
        self.int8 = bool(int8)
        if self.int8:  # the one place the CPU switch acts (bench's fasthmr_cpu is the same model)
            layers = int8 if isinstance(int8, str) else CPU_LAYERS
            hmr = hmr if is_int8(hmr) else quantize_int8(hmr, layers=layers)
            decoder = decoder.cpu() if decoder is not None else None
        self.hmr = hmr
        self.decoder = decoder
        self.windows = [(int(a), int(b)) for a, b in (windows or [])]
        self.rule = rule
        self.baseline_depth = int(baseline_depth if baseline_depth is not None else len(hmr.backbone.blocks))
        self.metadata = dict(metadata or {})

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_parts(
        cls,
        baseline: HMR,
        windows: Sequence[Sequence[int]] | None = None,
        mask_tome: MaskToMeConfig | None = None,
        decoder: nn.Module | str | os.PathLike | None = None,
        rule: str = "paper",
        *,
        metadata: dict[str, Any] | None = None,
        int8: bool | str = False,
    ) -> FastHMR:
        """Assemble FastHMR from a baseline (left untouched: the parts work on a copy).

        Args:
            baseline: an unpatched :class:`HMR` (no token merging installed).
            windows: ECLM windows ``[(lo, hi), ...]`` (original block indices, e.g. from
                :func:`fasthmr_lib.merging.eclm.load_windows`), or ``None`` / ``[]`` for the full depth.
            mask_tome: a ``MaskToMeConfig`` (applied after ECLM) or ``None``.
            decoder: a ``DiffusionDecoder``, a folder with ``vae/`` + ``denoiser/`` checkpoints (loaded onto
                the baseline's body model), or ``None`` (per-frame head only).
            rule: ECLM merge rule (:data:`fasthmr_lib.merging.eclm.RULES`).
            int8: run the backbone's linear layers in dynamic int8 (CPU only; see :mod:`.models.quantize`).
        """
        from .merging import eclm

        if not isinstance(baseline, HMR):
            raise TypeError(f"baseline must be an HMR model, got {type(baseline).__name__}")
        if baseline.token_merging is not None:
            raise ValueError(
                "baseline already has token merging installed (token_merging is set); pass the unpatched "
                "model and give the settings as mask_tome=MaskToMeConfig(...)"
            )
        depth = len(baseline.backbone.blocks)
        ws = eclm.validate_windows(windows or [], depth)
        hmr = eclm.apply_windows(baseline, ws, rule) if ws else copy.deepcopy(baseline)
        if isinstance(decoder, (str, os.PathLike)):
            decoder = _load_decoder_dir(decoder, hmr.smpl)
        dev = next(hmr.parameters()).device
        if decoder is not None:
            decoder = decoder.to(dev).eval()
        return cls(
            hmr.eval(),
            decoder,
            windows=sorted(ws),
            rule=rule,
            mask_tome=mask_tome,
            baseline_depth=depth,
            metadata=metadata,
            int8=int8,
        )

    # ------------------------------------------------------------------ nn.Module interface
    @property
    def mask_tome(self) -> MaskToMeConfig | None:
        """The Mask-ToMe settings the per-frame model runs with (``hmr.token_merging``)."""
        return patch.config_of(self.hmr)

    @property
    def cfg(self) -> ModelConfig:
        """The per-frame model's config (depth = the merged depth)."""
        return self.hmr.cfg

    @property
    def smpl(self) -> SMPLBody:
        return self.hmr.smpl

    @property
    def depth(self) -> int:
        return len(self.hmr.backbone.blocks)

    def forward(
        self,
        img: Tensor,
        person_mask: Tensor | None = None,
        bbox_info: Tensor | None = None,
        camera: CropCamera | None = None,
    ) -> dict[str, Any]:
        """The per-frame model (same interface and outputs as :meth:`HMR.forward`); the decoder runs
        over videos in :meth:`predict` / :meth:`decode`."""
        kw = {} if camera is None else {"camera": camera}  # per-frame stand-ins may not take a camera
        return self.hmr(img, person_mask=person_mask, bbox_info=bbox_info, **kw)

    def describe(self) -> dict[str, Any]:
        """The parts' settings (what :meth:`save` writes into ``fasthmr.json``, without weights)."""
        dec = None
        if self.decoder is not None:
            d = self.decoder
            dec = {
                "vae": d.vae.cfg.to_dict(),
                "denoiser": d.denoiser.cfg.to_dict(),
                "objective": d.objective,
                "latent_scale": d.latent_scale,
                "num_steps": d.num_steps,
                "overlap": d.overlap,
                "tail": d.tail,
                "batch_size": d.batch_size,
                "representation": d.body.representation,
                "leaf_ids": list(d.body.leaf_ids),
                "num_frames": d.num_frames,
            }
        return {
            "model": model_config_of(self.hmr).to_dict(),
            "baseline_depth": self.baseline_depth,
            "depth": self.depth,
            "eclm": {"windows": [list(w) for w in self.windows], "rule": self.rule},
            "mask_tome": _mask_tome_dict(self.mask_tome),
            "decoder": dec,
            "body_vertices": int(getattr(self.hmr.smpl, "num_vertices", 0)),
            "int8": self.int8,
        }

    # ------------------------------------------------------------------ saving / loading
    def save(
        self, directory: str | os.PathLike, *, fp16: bool = False, metadata: dict[str, Any] | None = None
    ) -> Path:
        """Write ``model.safetensors`` + ``fasthmr.json`` into ``directory`` (atomically, JSON last; see
        :func:`fasthmr_lib.models.checkpoints.write_folder`).

        ``fp16`` stores floating tensors in half precision (loaded back as float32). An int8 model is not
        saved (its weights are a lossy copy): save the float model and load it with ``int8=True``."""
        if self.int8:
            msg = "FastHMR.save: an int8 model is not saved; save the float model, load it with int8=True"
            raise ValueError(msg)
        return write_folder(
            directory,
            FORMAT,
            self._tensors(),
            self.describe(),
            fp16=fp16,
            metadata={**self.metadata, **dict(metadata or {})},
        )

    def _tensors(self) -> dict[str, Tensor]:
        """The artefact's tensors: ``hmr.backbone.*``, ``hmr.head.*`` and, with a decoder,
        ``decoder.vae.*``, ``decoder.denoiser.*``, ``decoder.stats.mean/std``."""
        tensors = {"hmr." + k: v for k, v in self.hmr.state_dict().items() if k.startswith(_HMR_PREFIXES)}
        if self.decoder is not None:
            for part in ("vae", "denoiser"):
                for k, v in getattr(self.decoder, part).state_dict().items():
                    tensors[f"decoder.{part}.{k}"] = v
            tensors["decoder.stats.mean"] = self.decoder.stats.mean
            tensors["decoder.stats.std"] = self.decoder.stats.std
        return tensors

    @staticmethod
    def read_config(directory: str | os.PathLike) -> dict[str, Any]:
        """The parsed ``fasthmr.json`` of a saved model (format checked)."""
        return read_folder_config(directory, FORMAT)

    @classmethod
    def load(
        cls,
        directory: str | os.PathLike,
        *,
        smpl: SMPLBody | None = None,
        device: str | torch.device = "cpu",
        int8: bool | str = False,
    ) -> FastHMR:
        """Inverse of :meth:`save` (float32, eval mode). ``smpl=None`` loads the body model from
        :func:`fasthmr_lib.body.smpl.resolve_smpl_dir`'s folder; ``int8=True`` runs the backbone's
        linear layers in dynamic int8 (CPU)."""
        directory = Path(directory)
        doc = cls.read_config(directory)
        cpath, wpath = directory / CONFIG_FILE, directory / WEIGHTS_FILE
        cfg = model_config_from(doc, cpath)
        tensors = read_folder_weights(directory, FORMAT)
        smpl = smpl if smpl is not None else load_body_model()
        _check_body_model(doc, smpl, cpath)
        hmr = HMR(cfg, smpl=smpl)
        load_state_strict(hmr, _strip(tensors, "hmr."), wpath, "the per-frame model", prefixes=_HMR_PREFIXES)
        decoder = None
        if doc.get("decoder") is not None:
            decoder = _build_decoder(doc["decoder"], tensors, smpl, wpath, cpath)
        eclm_doc = doc.get("eclm") or {}
        windows = [tuple(w) for w in eclm_doc.get("windows", [])]
        hmr.eclm_windows = [list(w) for w in windows]
        hmr.eclm_rule = eclm_doc.get("rule", "paper")
        mask_cfg = _mask_tome_config(doc, cpath)
        model = cls(
            hmr.eval(),
            decoder,
            windows=windows,
            rule=hmr.eclm_rule,
            mask_tome=mask_cfg,
            baseline_depth=doc.get("baseline_depth"),
            metadata=doc.get("metadata"),
            int8=int8,
        )
        model.checkpoint_info = {
            "dir": str(directory),
            "dtype": doc.get("dtype"),
            "metadata": doc.get("metadata"),
        }
        return (model if int8 else model.to(device)).eval()

    # ------------------------------------------------------------------ video inference
    @torch.no_grad()
    def decode(
        self, head_token: Tensor, betas: Tensor, *, seed: int = 0, rotmat: Tensor | None = None
    ) -> dict[str, Tensor]:
        """Diffusion-decode one clip: head tokens (T, C) + betas (T, 10) (+ the head's rotmat (T,24,3,3),
        which a decoder conditioned on the head's pose needs) -> ``rotmat`` (T,24,3,3), ``global_orient``
        (T,3), ``body_pose`` (T,69) (see ``DiffusionDecoder.forward``)."""
        if self.decoder is None:
            raise RuntimeError("this FastHMR has no diffusion decoder (decoder=None)")
        rot = None if rotmat is None else rotmat.float().cpu()
        return self.decoder(head_token.float().cpu(), betas.float().cpu(), seed=seed, rotmat=rot)

    @torch.no_grad()
    def predict(
        self,
        frames: np.ndarray | Sequence[np.ndarray],
        boxes: np.ndarray,
        masks: np.ndarray | Sequence[np.ndarray] | None = None,
        *,
        batch_size: int = 16,
        seed: int = 0,
        focal_px: float | None = None,
        humanfov: HumanFoV | str | os.PathLike | None = None,
        min_decoder_frames: int = 1,
        rescale: float | None = None,
        progress: bool = False,
    ) -> dict[str, Any]:
        """Run FastHMR on one video of one tracked person.

        Args:
            frames: (T, H, W, 3) uint8 RGB (an array or a sequence of (H, W, 3) arrays).
            boxes: (T, 4) float xyxy pixel boxes of the person.
            masks: (T, H, W) bool person masks (needed when Mask-ToMe protects person tokens).
            batch_size: frames per forward of the per-frame model.
            seed: noise seed of the one-step decoder (deterministic for a seed).
            focal_px: the full-image focal length (px) of a CameraHMR model's camera (e.g. from the
                video's K); without it HumanFoV's estimate when ``humanfov`` is given, else the image
                diagonal. HMR2.0 models ignore it (their camera is the crop's, f = 5000 px at 256 px).
            humanfov: CameraHMR's HumanFoV network (:class:`~fasthmr_lib.models.humanfov.HumanFoV`) or its
                checkpoint file (``cam_model_cleaned.ckpt``); default: ``$FASTHMR_HUMANFOV`` when set.
                It estimates every frame's focal length (as CameraHMR does per image).
            min_decoder_frames: videos shorter than this keep the per-frame head's poses.
            rescale: box scale factor of the crop (default: the model's crop rule: 1.2 for HMR2.0, 1.0
                for CameraHMR).

        Returns a dict of CPU tensors over the T frames: ``rotmat`` (T,24,3,3) (decoder output where
        ``smoothed``, else the head's), ``global_orient`` (T,3), ``body_pose`` (T,69) axis-angle,
        ``betas`` (T,10), ``cam`` (T,3) weak-perspective, ``cam_t`` (T,3) m (HMR2.0: crop camera;
        CameraHMR: full-image camera), ``joints3d`` (T,44,3) m, ``vertices`` (T,V,3) m,
        ``joints2d`` (T,44,2) crop-normalised, ``joints2d_px`` (T,44,2) image px (CameraHMR: projected with
        the image K), ``rotmat_head`` (T,24,3,3), ``head_token`` (T,C), ``crop_center`` (T,2) px,
        ``crop_side`` (T,) px, ``focal_px`` (T,) px (HMR2.0: its crop camera's focal in image px),
        ``smoothed`` (T,) bool; ``focal_source`` (str: ``given`` / ``humanfov`` / ``image_diagonal`` for
        CameraHMR, ``crop_5000`` for HMR2.0); and ``tokens_per_block`` (list[int]) when merging ran.
        """
        boxes = self._check_video(frames, boxes, masks, batch_size)
        if convention_of(self.hmr.cfg) == "camerahmr":
            focals, source = focal_lengths(frames, focal_px=focal_px, humanfov=humanfov, batch=batch_size)
        else:
            focals, source = None, "crop_5000"
        res, camera, tpb = self._per_frame(
            frames, boxes, masks, batch_size=batch_size, focals=focals, rescale=rescale, progress=progress
        )
        T = res["rotmat"].shape[0]
        smoothed = torch.zeros(T, dtype=torch.bool)
        if self.decoder is not None and T >= min_decoder_frames:
            self._smooth(res, camera, seed=seed, chunk=batch_size)
            smoothed[:] = True
        aa = roma.rotmat_to_rotvec(res["rotmat"])
        res["global_orient"], res["body_pose"] = aa[:, 0], aa[:, 1:].reshape(T, 69)
        if camera is None:  # HMR2.0: crop coords -> image px through the crop box
            c, sd = res["crop_center"].numpy(), res["crop_side"].numpy()
            px = [crop_to_image_points(res["joints2d"][t].numpy(), c[t], float(sd[t])) for t in range(T)]
            res["joints2d_px"] = torch.from_numpy(np.stack(px).astype(np.float32))
            res["focal_px"] = res["crop_side"] * (self.hmr.cfg.focal_length / self.hmr.cfg.image_size)
        else:
            res["focal_px"] = camera.focal.clone()
        res["focal_source"] = source
        res["smoothed"] = smoothed
        if tpb is not None:
            res["tokens_per_block"] = list(tpb)
        return res

    def _check_video(
        self,
        frames: np.ndarray | Sequence[np.ndarray],
        boxes: np.ndarray,
        masks: np.ndarray | Sequence[np.ndarray] | None,
        batch_size: int,
    ) -> np.ndarray:
        """:meth:`predict`'s argument checks (per-frame shapes are checked as frames are cropped);
        returns ``boxes`` as a (T, 4) float64 array."""
        T = len(frames)
        if T < 1:
            raise ValueError("predict: frames is empty; expected (T, H, W, 3) uint8 with T >= 1")
        boxes = np.asarray(boxes, np.float64)
        if boxes.shape != (T, 4):
            raise ValueError(f"predict: boxes must be (T={T}, 4) xyxy pixels, got {boxes.shape}")
        if masks is not None and len(masks) != T:
            raise ValueError(f"predict: masks must have T={T} entries (T, H, W) bool, got {len(masks)}")
        mt = self.mask_tome
        if mt is not None and mt.use_mask and masks is None:
            raise ValueError(
                "predict: this model protects person tokens (Mask-ToMe use_mask=True): pass masks (T, H, W) "
                "bool from a segmenter (or build it with mask_tome.use_mask=False)"
            )
        if batch_size < 1:
            raise ValueError(f"predict: batch_size must be >= 1, got {batch_size}")
        return boxes

    def _per_frame(
        self,
        frames: np.ndarray | Sequence[np.ndarray],
        boxes: np.ndarray,
        masks: np.ndarray | Sequence[np.ndarray] | None,
        *,
        batch_size: int,
        focals: np.ndarray | None,
        rescale: float | None,
        progress: bool,
    ) -> tuple[dict[str, Tensor], CropCamera | None, list[int] | None]:
        """The per-frame model over the video in batches of crops (the model's crop rule) -> (outputs of
        :data:`_FRAME_KEYS` (T, ...) (+ ``joints2d_px`` for CameraHMR) + ``rotmat_head``, ``crop_center``
        (T,2), ``crop_side`` (T,); the video's :class:`CropCamera` (CameraHMR: ``focals`` (T,) px) or
        ``None`` (HMR2.0); tokens per block of the last batch or ``None``)."""
        from tqdm.auto import tqdm

        T = len(frames)
        dev = next(self.hmr.parameters()).device
        rule = crop_rule_for(self.hmr.cfg)
        acc: dict[str, list[Tensor]] = {}
        centers, sides, hws, tpb = [], [], [], None
        for a in tqdm(range(0, T, batch_size), desc="FastHMR frames", disable=not progress):
            imgs, pms = [], []
            for t in range(a, min(T, a + batch_size)):
                img = np.asarray(frames[t])
                mask = None if masks is None else masks[t]
                cr = _crop_frame(img, boxes[t], mask, t, rule, rescale)
                imgs.append(normalize_image(cr["img"]))
                if masks is not None:
                    pms.append(torch.from_numpy(cr["person_mask"].astype(np.float32)))
                centers.append(cr["center"])
                sides.append(float(cr["side"]))
                hws.append(img.shape[:2])
            kw: dict[str, Any] = {}
            if pms:
                kw["person_mask"] = torch.stack(pms).to(dev)
            if focals is not None:
                sl = slice(a, a + len(imgs))
                kw["camera"] = CropCamera.from_numpy(centers[sl], sides[sl], hws[sl], focals[sl]).to(dev)
            out = self.hmr(torch.stack(imgs).to(dev), **kw)
            for k in (*_FRAME_KEYS, "joints2d_px"):
                if k in out:
                    acc.setdefault(k, []).append(out[k].detach().float().cpu())
            tpb = out.get("tokens_per_block", tpb)
        res: dict[str, Tensor] = {k: torch.cat(v) for k, v in acc.items()}
        res["rotmat_head"] = res["rotmat"]
        res["crop_center"] = torch.from_numpy(np.stack(centers).astype(np.float32))
        res["crop_side"] = torch.tensor(sides, dtype=torch.float32)
        camera = None if focals is None else CropCamera.from_numpy(centers, sides, hws, focals)
        return res, camera, tpb

    def _smooth(self, res: dict[str, Tensor], camera: CropCamera | None, *, seed: int, chunk: int) -> None:
        """Replace the head's poses in ``res`` by the decoder's, in place: ``rotmat`` (T,24,3,3) and the
        body posed with it — ``joints3d`` (T,44,3) m, ``vertices`` (T,V,3) m and the 2D joints
        (:meth:`HMR.project` with the same ``cam_t`` and ``camera``)."""
        dev = next(self.hmr.parameters()).device
        dec = self.decode(res["head_token"], res["betas"], seed=seed, rotmat=res["rotmat_head"])
        rot = dec["rotmat"].float()
        body = self._pose_body(rot, res["betas"], chunk, dev)
        res.update(rotmat=rot, joints3d=body["joints44"], vertices=body["vertices"])
        res.update(self.hmr.project(res["joints3d"], res["cam_t"], camera))

    def _pose_body(self, rot: Tensor, betas: Tensor, chunk: int, dev: torch.device) -> dict[str, Tensor]:
        parts: dict[str, list[Tensor]] = {"joints44": [], "vertices": []}
        for a in range(0, rot.shape[0], max(chunk, 1)):
            r, b = rot[a : a + chunk].to(dev), betas[a : a + chunk].to(dev)
            o = self.hmr.smpl(r[:, :1], r[:, 1:], b)
            for k in parts:
                parts[k].append(o[k].float().cpu())
        return {k: torch.cat(v) for k, v in parts.items()}


# ---------------------------------------------------------------------------------------------
# helpers


def _crop_frame(
    img: np.ndarray, box: np.ndarray, mask: np.ndarray | None, t: int, rule: CropRule, rescale: float | None
) -> dict[str, Any]:
    """The crop (``rule``; ``rescale`` overrides its box scale) of frame ``t`` ((H, W, 3) uint8) around
    ``box`` (xyxy px), with its (H, W) bool person mask warped identically when given
    (:func:`fasthmr_lib.data.crops.make_crop`)."""
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"predict: frame {t} must be (H, W, 3) uint8, got {img.shape} {img.dtype}")
    mk = None
    if mask is not None:
        m = np.asarray(mask)
        if m.shape != img.shape[:2]:
            raise ValueError(f"predict: mask {t} has shape {m.shape}, frame is {img.shape[:2]}")
        mk = {"person_mask": m.astype(bool)}
    return make_crop(img, box, masks=mk, rescale=rescale, rule=rule)


def _strip(tensors: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


def _check_body_model(doc: dict[str, Any], smpl: SMPLBody, cpath: Path) -> None:
    """The body model must have the vertex count the artefact was saved with (``body_vertices``)."""
    nv = int(doc.get("body_vertices") or 0)
    if nv and int(getattr(smpl, "num_vertices", nv)) != nv:
        raise CheckpointError(
            f"{cpath}: saved with a {nv}-vertex body model, but the given body model has "
            f"{smpl.num_vertices} vertices (set FASTHMR_SMPL_DIR / smpl= to the same body model)"
        )


def _mask_tome_config(doc: dict[str, Any], cpath: Path) -> MaskToMeConfig | None:
    """The saved Mask-ToMe settings (``mask_tome``) or ``None``."""
    if doc.get("mask_tome") is None:
        return None
    try:
        return MaskToMeConfig(**doc["mask_tome"])
    except TypeError as e:
        raise CheckpointError(f"{cpath}: bad 'mask_tome' settings ({e})") from e


def _build_decoder(
    d: dict[str, Any], tensors: dict[str, Tensor], smpl: nn.Module, wpath: Path, cpath: Path
) -> nn.Module:
    """The :class:`~fasthmr_lib.diffusion.decoder.DiffusionDecoder` of a saved artefact (settings ``d``
    from ``fasthmr.json``, weights ``decoder.*`` of ``tensors``), on ``smpl``'s body."""
    from .body.hybrik import FeatureStats, HybrIKBody
    from .diffusion.decoder import DiffusionDecoder
    from .diffusion.denoiser import DenoiserConfig, LatentDenoiser
    from .diffusion.vae import MotionVAE, VAEConfig

    try:
        vae = MotionVAE(VAEConfig.from_dict(d["vae"]))
        den = LatentDenoiser(DenoiserConfig.from_dict(d["denoiser"]))
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{cpath}: bad 'decoder' settings ({type(e).__name__}: {e})") from e
    load_state_strict(vae, _strip(tensors, "decoder.vae."), wpath, "the motion VAE")
    load_state_strict(den, _strip(tensors, "decoder.denoiser."), wpath, "the latent denoiser")
    if "decoder.stats.mean" not in tensors or "decoder.stats.std" not in tensors:
        raise CheckpointError(f"{wpath}: decoder normalisation stats 'decoder.stats.mean/std' missing")
    stats = FeatureStats(tensors["decoder.stats.mean"].float(), tensors["decoder.stats.std"].float())
    body = HybrIKBody.from_smpl(smpl, leaf_ids=tuple(d["leaf_ids"]), representation=d["representation"])
    return DiffusionDecoder(
        vae.eval(),
        den.eval(),
        body,
        stats,
        objective=d["objective"],
        latent_scale=float(d["latent_scale"]),
        num_steps=int(d.get("num_steps", 1)),
        overlap=int(d.get("overlap", 0)),
        tail=str(d.get("tail", "shift")),
        batch_size=int(d.get("batch_size", 16)),
    ).eval()
