"""HMR model: ViT backbone + SMPL transformer-decoder head + SMPL body, as HMR2.0
(4D-Humans ``hmr2/models/hmr2.py``, ``forward_step``) computes it, plus the hooks FastHMR needs
(token state for Mask-ToMe, the head token for the diffusion decoder).

The path of the person mask: ``forward`` -> :meth:`HMR.forward_features` builds one
:class:`TokenState` from ``token_merging`` (a :class:`MaskToMeConfig`, set by
``merging.patch.apply``) and the mask -> every ViT block runs the merge step on it -> the head
cross-attends to the remaining tokens (:meth:`HMR.forward_head`, log-size bias when configured).

Camera conventions (HMR2.0): the head predicts a weak-perspective camera (s, tx, ty) for the
256-px crop; ``cam_t = [tx, ty, 2 f / (S s + 1e-9)]`` with f = 5000 px and S = 256 px; 2D keypoints
are the perspective projection of ``joints3d + cam_t`` with focal f / S and principal point 0, i.e.
crop-normalised coordinates (roughly in [-0.5, 0.5]).
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor, nn

from ..body.smpl import SMPLBody, load_body_model
from ..config import ModelConfig, get_preset
from ..merging.mask_tome import MaskToMeConfig, token_state
from ..merging.state import TokenState
from .head import SMPLHead
from .vit import ViT


def weak_cam_to_translation(cam: Tensor, focal_length: float = 5000.0, image_size: float = 256.0) -> Tensor:
    """HMR2.0 ``pred_cam_t``: cam (B, 3) = (s, tx, ty) -> (B, 3) = (tx, ty, 2 f / (S s + 1e-9)) metres."""
    tz = 2 * focal_length / (image_size * cam[:, 0] + 1e-9)
    return torch.stack([cam[:, 1], cam[:, 2], tz], dim=-1)


def project_crop(
    points: Tensor, cam_t: Tensor, focal_length: float = 5000.0, image_size: float = 256.0
) -> Tensor:
    """HMR2.0 ``pred_keypoints_2d``: points (B, N, 3) + cam_t (B, 3), pinhole with focal f / S and
    principal point 0 -> (B, N, 2) crop-normalised coordinates."""
    p = points + cam_t[:, None]
    return p[..., :2] / p[..., 2:3] * (focal_length / image_size)


def cliff_bbox_info(box_center: Tensor, box_size: Tensor, img_size_hw: Tensor, focal: Tensor) -> Tensor:
    """CameraHMR's query-token conditioning (``core/camerahmr_model.py``, from CLIFF):
    ``[(cx - W/2) / f, (cy - H/2) / f, b / f]``.

    box_center (B, 2) px, box_size (B,) px (side of the square crop box), img_size_hw (B, 2) = (H, W) px,
    focal (B,) px (fx of the full-image intrinsics). Returns (B, 3) float."""
    f = focal.to(torch.float32)
    cx, cy = box_center[:, 0], box_center[:, 1]
    h, w = img_size_hw[:, 0], img_size_hw[:, 1]
    return torch.stack([(cx - w / 2.0) / f, (cy - h / 2.0) / f, box_size / f], dim=-1).float()


def cam_crop_to_full(
    cam: Tensor, box_center: Tensor, box_size: Tensor, img_size_hw: Tensor, focal: Tensor | float
) -> Tensor:
    """Weak-perspective crop camera -> full-image translation (HMR2.0 ``cam_crop_to_full``; CameraHMR
    ``convert_to_full_img_cam``): ``tz = 2 F / (b s)``, ``tx' = tx + 2 (cx - W/2) / (b s)``,
    ``ty' = ty + 2 (cy - H/2) / (b s)``. Shapes as :func:`cliff_bbox_info`; returns (B, 3) metres."""
    s, tx, ty = cam[:, 0], cam[:, 1], cam[:, 2]
    bs = box_size * s + 1e-9
    h, w = img_size_hw[:, 0], img_size_hw[:, 1]
    tz = 2 * focal / bs
    return torch.stack(
        [tx + 2 * (box_center[:, 0] - w / 2.0) / bs, ty + 2 * (box_center[:, 1] - h / 2.0) / bs, tz], -1
    )


class HMR(nn.Module):
    """Backbone + SMPL head + body model.

    Attributes:
        cfg: the :class:`ModelConfig` it was built from.
        backbone: :class:`ViT` (``blocks`` may be replaced by layer merging).
        head: :class:`SMPLHead`.
        smpl: :class:`SMPLBody`, or ``None`` for a backbone + head model (``with_body=False``: what
            Table 12 counts and benchmarks time; ``forward`` then returns the head's outputs only).
        token_merging: ``None`` or the :class:`MaskToMeConfig` every forward merges tokens with
            (set by ``merging.patch.apply``).
    """

    def __init__(self, cfg: ModelConfig, smpl: SMPLBody | None = None, *, with_body: bool = True):
        super().__init__()
        if cfg.head.context_dim != cfg.vit.embed_dim:
            raise ValueError(
                f"head.context_dim ({cfg.head.context_dim}) must equal vit.embed_dim ({cfg.vit.embed_dim})"
            )
        self.cfg = cfg
        self.backbone = ViT(cfg.vit)
        if with_body:
            self.smpl: SMPLBody | None = smpl if smpl is not None else load_body_model()
            self.head = SMPLHead(cfg.head, mean_params=self.smpl.mean_params)
        else:
            self.smpl = None
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # no body model: zero mean parameters
                self.head = SMPLHead(cfg.head)
        self.token_merging: MaskToMeConfig | None = None

    def token_state(self, person_mask: Tensor | None, batch: int) -> TokenState | None:
        """The per-forward state for ``token_merging`` (``None`` when merging is off)."""
        if self.token_merging is None:
            return None
        dev = self.backbone.pos_embed.device
        return token_state(self.token_merging, person_mask, batch, self.cfg.vit.num_tokens, dev)

    def forward_features(
        self, img: Tensor, person_mask: Tensor | None = None, state: TokenState | None = None
    ) -> tuple[Tensor, TokenState | None]:
        """img (B, 3, 256, 256) ImageNet-normalised crop, person_mask (B, 256, 256) crop-aligned ->
        (tokens (B, N', C) after ``last_norm``, the token state used). ``state`` overrides the one built
        from ``token_merging`` (e.g. a state that records history for merge traces)."""
        S = self.cfg.image_size
        if img.ndim != 4 or img.shape[1] != 3 or tuple(img.shape[2:]) != (S, S):
            raise ValueError(f"HMR input must be a (B, 3, {S}, {S}) crop, got {tuple(img.shape)}")
        if state is None:
            state = self.token_state(person_mask, img.shape[0])
        return self.backbone.forward_tokens(img[:, :, :, 32:-32], state), state

    def forward_head(
        self, tokens: Tensor, state: TokenState | None = None, bbox_info: Tensor | None = None
    ) -> dict[str, Tensor]:
        """tokens (B, N', C) -> the head's dict (``rotmat``, ``pose6d``, ``betas``, ``cam``, ``token``)
        plus ``cam_t`` (B, 3) metres; bbox_info (B, 3) CLIFF box info (``camerahmr``)."""
        bias = state.head_bias() if state is not None else None
        h = dict(self.head(tokens, bbox_info=bbox_info, context_bias=bias))
        h["cam_t"] = weak_cam_to_translation(h["cam"], self.cfg.focal_length, self.cfg.image_size)
        return h

    def forward(
        self, img: Tensor, person_mask: Tensor | None = None, bbox_info: Tensor | None = None
    ) -> dict[str, Tensor]:
        """img (B, 3, 256, 256) ImageNet-normalised crop; person_mask (B, 256, 256) crop-aligned (used
        only when ``token_merging`` is set); bbox_info (B, 3) CLIFF box info (``camerahmr``).

        Returns ``rotmat`` (B,24,3,3), ``pose6d`` (B,144), ``betas`` (B,10), ``cam`` (B,3),
        ``cam_t`` (B,3), ``joints3d`` (B,44,3), ``vertices`` (B,V,3), ``joints2d`` (B,44,2),
        ``head_token`` (B, head dim), and ``tokens_per_block`` (list[int]) when a token state was used.
        Without a body model (``with_body=False``) only the head's outputs and ``tokens_per_block``.
        """
        tokens, state = self.forward_features(img, person_mask)
        return self.outputs(self.forward_head(tokens, state, bbox_info), state)

    def outputs(self, h: dict[str, Tensor], state: TokenState | None) -> dict[str, Tensor]:
        """:meth:`forward`'s dict from the head's (:meth:`forward_head`) and the token state: the head's
        outputs, the body's (when there is a body model), ``head_token``, ``tokens_per_block``."""
        out: dict = {k: h[k] for k in ("rotmat", "pose6d", "betas", "cam", "cam_t")}
        if self.smpl is not None:
            out |= self._body(h["rotmat"], h["betas"], h["cam_t"])
        out["head_token"] = h["token"]
        if state is not None:
            out["tokens_per_block"] = list(state.tokens_per_block)
        return out

    def _body(self, rot: Tensor, betas: Tensor, cam_t: Tensor) -> dict[str, Tensor]:
        """SMPL joints, vertices and crop 2D joints for rotmat (B,24,3,3), betas (B,10), cam_t (B,3)."""
        body = self.smpl(rot[:, :1].float(), rot[:, 1:].float(), betas.float())
        joints3d = body["joints44"]
        joints2d = project_crop(
            joints3d, cam_t.to(joints3d.dtype), self.cfg.focal_length, self.cfg.image_size
        )
        return {"joints3d": joints3d, "vertices": body["vertices"], "joints2d": joints2d}


def build_model(preset: str | ModelConfig, smpl: SMPLBody | None = None) -> HMR:
    """``HMR`` from a preset name (``hmr2``, ``camerahmr``, ``small``, ``tiny``) or a config; ``smpl=None``
    loads the body model from :func:`fasthmr_lib.body.smpl.resolve_smpl_dir`'s folder."""
    cfg = get_preset(preset) if isinstance(preset, str) else preset
    return HMR(cfg, smpl=smpl)
