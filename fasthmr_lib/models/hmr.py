"""HMR model: ViT backbone + SMPL transformer-decoder head + SMPL body, as HMR2.0
(4D-Humans ``hmr2/models/hmr2.py``, ``forward_step``) computes it, plus the hooks FastHMR needs
(token state for Mask-ToMe, the head token for the diffusion decoder).

The path of the person mask: ``forward`` -> :meth:`HMR.forward_features` builds one
:class:`TokenState` from ``token_merging`` (a :class:`MaskToMeConfig`, set by
``merging.patch.apply``) and the mask -> every ViT block runs the merge step on it -> the head
cross-attends to the remaining tokens (:meth:`HMR.forward_head`, log-size bias when configured).

Camera conventions: :mod:`fasthmr_lib.models.camera` (chosen by the config, :func:`convention_of`).
``hmr2``: the head predicts a weak-perspective camera (s, tx, ty) for the 256-px crop;
``cam_t = [tx, ty, 2 f / (S s + 1e-9)]`` with f = 5000 px and S = 256 px; 2D keypoints are the
perspective projection of ``joints3d + cam_t`` with focal f / S and principal point 0, i.e.
crop-normalised coordinates (roughly in [-0.5, 0.5]). ``camerahmr``: the head reads the CLIFF box info
of a :class:`CropCamera`; ``cam_t`` is the full-image translation and ``joints2d_px`` the projection with
the image K (``joints2d``: the same points crop-normalised).
"""

from __future__ import annotations

import warnings

from torch import Tensor, nn

from ..body.smpl import SMPLBody, load_body_model
from ..config import ModelConfig, get_preset
from ..merging.mask_tome import MaskToMeConfig, token_state
from ..merging.state import TokenState
from .camera import (  # noqa: F401 (the formulas are also imported from here)
    CropCamera,
    cam_crop_to_full,
    cliff_bbox_info,
    convention_of,
    project_crop,
    weak_cam_to_translation,
)
from .head import SMPLHead
from .vit import ViT


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
        self,
        tokens: Tensor,
        state: TokenState | None = None,
        bbox_info: Tensor | None = None,
        camera: CropCamera | None = None,
    ) -> dict[str, Tensor]:
        """tokens (B, N', C) -> the head's dict (``rotmat``, ``pose6d``, ``betas``, ``cam``, ``token``)
        plus ``cam_t`` (B, 3) metres (:meth:`translation`); ``camera`` or bbox_info (B, 3) for a
        ``camerahmr`` model (:meth:`crop_camera`); the dict keeps the camera under ``crop_camera``."""
        bias = state.head_bias() if state is not None else None
        cam = self.crop_camera(tokens.shape[0], bbox_info, camera)
        info = None if cam is None else cam.bbox_info()
        h = dict(self.head(tokens, bbox_info=info, context_bias=bias))
        h["cam_t"] = self.translation(h["cam"], cam)
        h["crop_camera"] = cam
        return h

    def crop_camera(
        self, batch: int, bbox_info: Tensor | None = None, camera: CropCamera | None = None
    ) -> CropCamera | None:
        """The :class:`CropCamera` a ``camerahmr`` model runs with: ``camera``, or one in focal-length units
        from ``bbox_info`` (B, 3); ``None`` for an ``hmr2`` model (which ignores both)."""
        if convention_of(self.cfg) == "hmr2":
            return None
        if camera is not None and bbox_info is not None:
            raise ValueError("pass camera (a CropCamera) or bbox_info (B, 3), not both")
        if camera is None and bbox_info is not None:
            camera = CropCamera.from_bbox_info(bbox_info)
        if camera is None or camera.box_center.shape[0] != batch:
            got = None if camera is None else camera.box_center.shape[0]
            raise ValueError(
                f"this head (token_input='bbox', CameraHMR) needs bbox_info (B, 3) or a CropCamera for "
                f"B={batch} crops; got {got}"
            )
        return camera

    def translation(self, cam: Tensor, camera: CropCamera | None) -> Tensor:
        """cam (B, 3) weak-perspective -> ``cam_t`` (B, 3) m: HMR2.0's crop camera (``camera`` None) or
        CameraHMR's full-image translation (``camera.translation``)."""
        if camera is None:
            return weak_cam_to_translation(cam, self.cfg.focal_length, self.cfg.image_size)
        return camera.translation(cam)

    def project(self, joints3d: Tensor, cam_t: Tensor, camera: CropCamera | None) -> dict[str, Tensor]:
        """2D joints of joints3d (B, N, 3) m at ``cam_t`` (B, 3): ``joints2d`` (B, N, 2) crop-normalised
        (HMR2.0: the crop camera, f = ``cfg.focal_length`` at ``cfg.image_size``) and, for a
        ``camerahmr`` camera in pixels, ``joints2d_px`` (B, N, 2) projected with the image K."""
        if camera is None:
            cam_t = cam_t.to(joints3d.dtype)
            return {"joints2d": project_crop(joints3d, cam_t, self.cfg.focal_length, self.cfg.image_size)}
        return camera.to(joints3d.device).project(joints3d, cam_t.to(joints3d.dtype))

    def forward(
        self,
        img: Tensor,
        person_mask: Tensor | None = None,
        bbox_info: Tensor | None = None,
        camera: CropCamera | None = None,
    ) -> dict[str, Tensor]:
        """img (B, 3, 256, 256) ImageNet-normalised crop; person_mask (B, 256, 256) crop-aligned (used
        only when ``token_merging`` is set); for a ``camerahmr`` model the crops' ``camera``
        (:class:`CropCamera`: box centre/side, image size, focal) or only their CLIFF bbox_info (B, 3).

        Returns ``rotmat`` (B,24,3,3), ``pose6d`` (B,144), ``betas`` (B,10), ``cam`` (B,3),
        ``cam_t`` (B,3) m (crop camera for ``hmr2``, full-image camera for ``camerahmr``),
        ``joints3d`` (B,44,3), ``vertices`` (B,V,3), ``joints2d`` (B,44,2) crop-normalised,
        ``joints2d_px`` (B,44,2) image px (``camerahmr`` with a ``camera``), ``head_token`` (B, head dim),
        and ``tokens_per_block`` (list[int]) when a token state was used.
        Without a body model (``with_body=False``) only the head's outputs and ``tokens_per_block``.
        """
        tokens, state = self.forward_features(img, person_mask)
        return self.outputs(self.forward_head(tokens, state, bbox_info, camera), state)

    def outputs(self, h: dict[str, Tensor], state: TokenState | None) -> dict[str, Tensor]:
        """:meth:`forward`'s dict from the head's (:meth:`forward_head`) and the token state: the head's
        outputs, the body's (when there is a body model), ``head_token``, ``tokens_per_block``."""
        out: dict = {k: h[k] for k in ("rotmat", "pose6d", "betas", "cam", "cam_t")}
        if self.smpl is not None:
            out |= self._body(h["rotmat"], h["betas"], h["cam_t"], h.get("crop_camera"))
        out["head_token"] = h["token"]
        if state is not None:
            out["tokens_per_block"] = list(state.tokens_per_block)
        return out

    def _body(
        self, rot: Tensor, betas: Tensor, cam_t: Tensor, camera: CropCamera | None
    ) -> dict[str, Tensor]:
        """SMPL joints, vertices and 2D joints (:meth:`project`) for rotmat (B,24,3,3), betas (B,10),
        cam_t (B,3)."""
        body = self.smpl(rot[:, :1].float(), rot[:, 1:].float(), betas.float())
        joints3d = body["joints44"]
        return {"joints3d": joints3d, "vertices": body["vertices"], **self.project(joints3d, cam_t, camera)}


def build_model(preset: str | ModelConfig, smpl: SMPLBody | None = None) -> HMR:
    """``HMR`` from a preset name (``hmr2``, ``camerahmr``, ``small``, ``tiny``) or a config; ``smpl=None``
    loads the body model from :func:`fasthmr_lib.body.smpl.resolve_smpl_dir`'s folder."""
    cfg = get_preset(preset) if isinstance(preset, str) else preset
    return HMR(cfg, smpl=smpl)
