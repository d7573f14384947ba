"""HybrIK pose representation: SMPL θ (+β) <-> 29 joints + 23 twists (133 numbers per frame).

FastHMR (arXiv 2510.10868, §3.3 / Table 7) represents each frame as HybrIK's (Li et al., CVPR 2021)
29 joint positions (SMPL's 24 + 5 leaf joints: head top, left/right middle-finger tip, left/right big
toe) and 23 twist angles stored as (cos φ, sin φ): 29·3 + 23·2 = 133. Going back to SMPL needs HybrIK's
analytic twist-and-swing inverse kinematics with the rest skeleton of the body shape β.

Conventions (ours, docs/AMBIGUITIES.md #11):

* joints are root-relative (pelvis at the origin) in metres, in the frame of the global orientation
  (camera frame for camera-frame θ); the feature vector is ``[joints29.flatten(), (cos, sin) × 23]``;
* the leaf joints are rigidly attached to their parents (HybrIK's ``lbs``: rest leaf = shaped template
  vertex ``v_shaped[leaf_id]``, posed by the parent's chain rotation); SMPL's leaf vertex ids are
  ``[411, 2445, 5905, 3216, 6617]`` (HybrIK ``leaf_number``); the embedded body gives its own under
  ``"hybrik_leaf"`` in ``vertex_picks.json``;
* twist ``φ_i`` of joint i (1..23) is the rotation of its local rotation ``R_i`` about the rest bone
  towards its child, from the swing-twist split ``R_i = R_swing · R_twist(φ_i)`` (HybrIK Eq. 4–6);
  the child is the single child, the leaf for joints 10, 11, 15, 22, 23, and the neck (12) for the
  spine3 joint (9) (HybrIK's SMPL layer sets ``children[9]`` to the neck);
* the inverse kinematics is HybrIK's test-time IK (``batch_inverse_kinematics_transform``, eval mode):
  the root by a rotation fit (Kabsch via ``roma.special_procrustes``) of the rest offsets of joints 1-3
  to the predicted ones (``batch_get_pelvis_orient_svd``); every other joint, spine3 included, by the
  swing that aims its child from the joint's *reconstructed* position at the predicted child, times the
  twist φ; where that aim is more than 15 mm from the predicted bone (scaled to the rest length), the
  predicted bone direction is used instead. ``method="fit_spine3"`` keeps an earlier variant: spine3
  from a rotation fit to its three children (ignoring φ_9) and no 15-mm fallback. On noisy joints it
  measures better in joint error and worse at spine3 (``python -m fasthmr_lib.eval.ik_noise``, 2,000
  random poses of the embedded body, Gaussian noise 5 / 10 / 20 mm per coordinate: joint error 9.5 /
  19.1 / 38.5 mm vs HybrIK's 10.2 / 22.2 / 47.2, spine3 rotation error 6.7 / 13.3 / 25.7° vs 5.7 /
  11.4 / 22.9°; the 15-mm fallback is what costs HybrIK the joint error).

Everything here is pure tensor code (batched torch, rotations through roma); :class:`HybrIKBody`
only holds the few body-model tensors the representation needs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import roma
import torch
from torch import Tensor, nn

SMPL_PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)
# HybrIK ``parents_29``: leaves head_top<-head(15), left_middle<-left_hand(22), right_middle<-right_hand(23),
# left_bigtoe<-left_foot(10), right_bigtoe<-right_foot(11).
PARENTS_29 = SMPL_PARENTS + (15, 22, 23, 10, 11)
LEAF_NAMES = ("head_top", "left_middle", "right_middle", "left_bigtoe", "right_bigtoe")
SMPL_LEAF_VERTEX_IDS = (411, 2445, 5905, 3216, 6617)  # HybrIK lbs.py ``leaf_number`` (SMPL topology)
NUM_JOINTS = 29
NUM_TWISTS = 23
NUM_FEATURES = NUM_JOINTS * 3 + NUM_TWISTS * 2  # 133
ROT6D_FEATURES = 24 * 6  # the "SMPL rotations" representation of the Table 7 ablation
SPINE3 = 9
ROOT_CHILDREN = (1, 2, 3)
SPINE3_CHILDREN = (12, 13, 14)
# The child whose bone defines joint i's swing/twist (i = 1..23; index 0 unused).
TWIST_CHILD = (-1, 4, 5, 6, 7, 8, 9, 10, 11, 12, 27, 28, 15, 16, 17, 24, 18, 19, 20, 21, 22, 23, 25, 26)
REPRESENTATIONS = ("hybrik", "rot6d")


def feature_dim(representation: str = "hybrik") -> int:
    """Per-frame feature size: 133 for ``"hybrik"``, 144 for ``"rot6d"`` (24 × 6D rotations)."""
    if representation not in REPRESENTATIONS:
        raise ValueError(f"representation must be one of {REPRESENTATIONS}, got {representation!r}")
    return NUM_FEATURES if representation == "hybrik" else ROT6D_FEATURES


# ----------------------------------------------------------------------------------------------------
# pure kinematics


def _rel_rest(rest29: Tensor) -> Tensor:
    """(B,29,3) rest joints -> (B,29,3) offsets from the parent (root keeps its position)."""
    par = torch.tensor(PARENTS_29[1:], device=rest29.device)
    return torch.cat([rest29[:, :1], rest29[:, 1:] - rest29[:, par]], dim=1)


def forward_kinematics29(rotmats: Tensor, rest29: Tensor) -> tuple[Tensor, Tensor]:
    """Posed 29 joints of SMPL's kinematic tree with rigid leaves.

    Args:
        rotmats: (B,24,3,3) local rotations, global orientation first.
        rest29: (B,29,3) rest joints (metres) of the shaped body (see :meth:`HybrIKBody.rest_joints`).
    Returns:
        joints (B,29,3) with the pelvis at its rest position (as smplx without ``transl``),
        chain (B,24,3,3) global rotations.
    """
    rel = _rel_rest(rest29)
    pos = [rest29[:, 0]]
    chain = [rotmats[:, 0]]
    for i in range(1, 24):
        p = PARENTS_29[i]
        chain.append(chain[p] @ rotmats[:, i])
        pos.append(pos[p] + (chain[p] @ rel[:, i, :, None])[..., 0])
    for i in range(24, 29):
        p = PARENTS_29[i]
        pos.append(pos[p] + (chain[p] @ rel[:, i, :, None])[..., 0])
    return torch.stack(pos, 1), torch.stack(chain, 1)


def _swing(t: Tensor, d: Tensor) -> Tensor:
    """(B,3,3) smallest rotation taking direction t (B,3) onto direction d (B,3)."""
    cross = torch.cross(t, d, dim=-1)
    s = cross.norm(dim=-1, keepdim=True)
    c = (t * d).sum(-1, keepdim=True)
    angle = torch.atan2(s, c)
    rotvec = cross * (angle / s.clamp_min(1e-12))
    return roma.rotvec_to_rotmat(rotvec)


def twist_angles(rotmats: Tensor, rest29: Tensor) -> Tensor:
    """Twist angle φ_i (radians, (-π, π]) of joints 1..23: ``R_i = R_swing · R_twist(φ_i)`` about the rest
    bone towards :data:`TWIST_CHILD` ``[i]``. rotmats (B,24,3,3), rest29 (B,29,3) -> (B,23)."""
    rel = _rel_rest(rest29)
    child = torch.tensor(TWIST_CHILD[1:], device=rotmats.device)
    t = rel[:, child]  # (B,23,3) rest bones in the parent's frame (= joint's frame at rest)
    t = t / t.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    R = rotmats[:, 1:]
    d = (R @ t[..., None])[..., 0]
    B = R.shape[0]
    sw = _swing(t.reshape(-1, 3), d.reshape(-1, 3)).reshape(B, 23, 3, 3)
    tw = sw.transpose(-1, -2) @ R  # rotation about t
    return (roma.rotmat_to_rotvec(tw) * t).sum(-1)


def _fit_rotation(rest_vecs: Tensor, target_vecs: Tensor) -> Tensor:
    """Rotation R (B,3,3) minimising Σ‖R r_k − x_k‖² for rest (B,K,3), targets (B,K,3) (Kabsch)."""
    M = target_vecs.transpose(1, 2) @ rest_vecs  # Σ x r^T
    return roma.special_procrustes(M)


IK_METHODS = ("hybrik", "fit_spine3")
HYBRIK_FALLBACK_M = 0.015  # HybrIK lbs.py: ``diff > 15 / 1000`` (metres)


def inverse_kinematics(joints29: Tensor, twist_cs: Tensor, rest29: Tensor, method: str = "hybrik") -> Tensor:
    """HybrIK analytic twist-and-swing IK: 29 joints + 23 twists + rest skeleton -> SMPL local rotations.

    Args:
        joints29: (B,29,3) target joints (any root position; only offsets matter), metres.
        twist_cs: (B,23,2) (cos φ, sin φ) (need not be unit; the angle is ``atan2(sin, cos)``).
        rest29: (B,29,3) rest joints of the body shape.
        method: ``"hybrik"`` (HybrIK's test-time IK, see the module docstring) or ``"fit_spine3"``.
    Returns:
        (B,24,3,3) local rotations, global orientation first.
    """
    if method not in IK_METHODS:
        raise ValueError(f"inverse_kinematics: method must be one of {IK_METHODS}, got {method!r}")
    B = joints29.shape[0]
    rel = _rel_rest(rest29)
    tgt = joints29 - joints29[:, :1]
    phi = torch.atan2(twist_cs[..., 1], twist_cs[..., 0])  # (B,23)
    rc = list(ROOT_CHILDREN)
    chain = [_fit_rotation(rel[:, rc], tgt[:, rc])]
    local = [chain[0]]
    pos = [tgt[:, 0]]
    for i in range(1, 24):
        p = PARENTS_29[i]
        Rp = chain[p]
        pos_i = pos[p] + (Rp @ rel[:, i, :, None])[..., 0]
        pos.append(pos_i)
        if i == SPINE3 and method == "fit_spine3":
            cs = list(SPINE3_CHILDREN)
            target = (Rp.transpose(1, 2) @ (tgt[:, cs] - pos_i[:, None]).transpose(1, 2)).transpose(1, 2)
            R = _fit_rotation(rel[:, cs], target)
        else:
            c = TWIST_CHILD[i]
            t = rel[:, c]
            aim = tgt[:, c] - pos_i  # from the reconstructed joint to the predicted child
            if method == "hybrik":  # fall back to the predicted bone where the aim is off by > 15 mm
                bone = tgt[:, c] - tgt[:, i]
                scale = t.norm(dim=-1, keepdim=True) / bone.norm(dim=-1, keepdim=True).clamp_min(1e-12)
                bone = bone * scale  # the predicted bone direction at the rest length
                off = (aim - bone).norm(dim=-1, keepdim=True) > HYBRIK_FALLBACK_M
                aim = torch.where(off, bone, aim)
            d = (Rp.transpose(1, 2) @ aim[..., None])[..., 0]
            t_unit = t / t.norm(dim=-1, keepdim=True).clamp_min(1e-12)
            R_sw = _swing(t_unit, d / d.norm(dim=-1, keepdim=True).clamp_min(1e-12))
            R_tw = roma.rotvec_to_rotmat(t_unit * phi[:, i - 1, None])
            R = R_sw @ R_tw
        local.append(R)
        chain.append(Rp @ R)
    return torch.stack(local, 1).reshape(B, 24, 3, 3)


def encode_rot6d(rotmats: Tensor) -> Tensor:
    """(B,24,3,3) -> (B,144): first two columns of each rotation (HMR2's 6D convention)."""
    return rotmats[..., :2].transpose(-1, -2).reshape(rotmats.shape[0], -1)


def decode_rot6d(feats: Tensor) -> Tensor:
    """(B,144) -> (B,24,3,3) via Gram–Schmidt (``roma.special_gramschmidt``)."""
    return roma.special_gramschmidt(feats.reshape(-1, 24, 2, 3).transpose(-1, -2))


# ----------------------------------------------------------------------------------------------------
# body-shape adapter


def leaf_vertex_ids(body: Any) -> tuple[int, ...]:
    """HybrIK's 5 leaf vertex ids for a body model: ``vertex_picks.json["hybrik_leaf"]`` next to the
    model (the embedded body writes it), else SMPL's ids for a 6890-vertex mesh; else a clear error."""
    src = getattr(body, "source_dir", None)
    if src is not None and (Path(src) / "vertex_picks.json").is_file():
        picks = json.loads((Path(src) / "vertex_picks.json").read_text())
        if "hybrik_leaf" in picks:
            ids = tuple(int(i) for i in picks["hybrik_leaf"])
            if len(ids) != 5:
                raise ValueError(f"{Path(src) / 'vertex_picks.json'}: 'hybrik_leaf' must list 5 vertex ids")
            return ids
    V = int(getattr(body, "num_vertices", body.v_template.shape[0]))
    if V == 6890:
        return SMPL_LEAF_VERTEX_IDS
    raise ValueError(
        f"body model with {V} vertices has no HybrIK leaf ids: add 'hybrik_leaf' (5 vertex ids: head top, "
        f"left/right middle finger tip, left/right big toe) to vertex_picks.json in {src}"
    )


class HybrIKBody(nn.Module):
    """The body-model tensors the representation needs: rest joints ``J(β) = T29 + dirs29 · β``.

    Build with :meth:`from_smpl` (an smplx SMPL layer / :class:`fasthmr_lib.body.smpl.SMPLBody`) or
    directly from arrays. ``representation`` is ``"hybrik"`` (133-d) or ``"rot6d"`` (144-d, the SMPL
    rotations baseline of Table 7).
    """

    def __init__(
        self,
        v_template: Tensor,
        shapedirs: Tensor,
        J_regressor: Tensor,
        leaf_ids: tuple[int, ...] = SMPL_LEAF_VERTEX_IDS,
        representation: str = "hybrik",
    ):
        super().__init__()
        self.representation = representation
        self.dim = feature_dim(representation)
        V = v_template.shape[0]
        if shapedirs.shape[:2] != (V, 3) or J_regressor.shape != (24, V):
            raise ValueError(
                f"HybrIKBody: expected v_template (V,3), shapedirs (V,3,K), J_regressor (24,V); got "
                f"{tuple(v_template.shape)}, {tuple(shapedirs.shape)}, {tuple(J_regressor.shape)}"
            )
        if len(leaf_ids) != 5 or min(leaf_ids) < 0 or max(leaf_ids) >= V:
            raise ValueError(f"leaf_ids must be 5 vertex ids in [0,{V}), got {leaf_ids}")
        vt = v_template.double()
        sd = shapedirs.double()
        Jr = J_regressor.double()
        t29 = torch.cat([Jr @ vt, vt[list(leaf_ids)]], 0)
        d29 = torch.cat([torch.einsum("jv,vck->jck", Jr, sd), sd[list(leaf_ids)]], 0)
        self.leaf_ids = tuple(int(i) for i in leaf_ids)
        self.num_betas = int(shapedirs.shape[2])
        self.register_buffer("rest_template", t29.float())  # (29,3)
        self.register_buffer("rest_dirs", d29.float())  # (29,3,K)

    @classmethod
    def from_smpl(
        cls, body: Any, leaf_ids: tuple[int, ...] | None = None, representation: str = "hybrik"
    ) -> HybrIKBody:
        """From a smplx SMPL layer (buffers ``v_template``, ``shapedirs``, ``J_regressor``)."""
        ids = leaf_vertex_ids(body) if leaf_ids is None else tuple(leaf_ids)
        out = cls(body.v_template, body.shapedirs, body.J_regressor, ids, representation)
        return out.to(body.v_template.device)

    def rest_joints(self, betas: Tensor) -> Tensor:
        """betas (B,K) -> (B,29,3) rest joints (metres)."""
        if betas.ndim != 2 or betas.shape[1] > self.num_betas:
            raise ValueError(f"betas must be (B,<= {self.num_betas}), got {tuple(betas.shape)}")
        K = betas.shape[1]
        return self.rest_template + torch.einsum(
            "bk,jck->bjc", betas.to(self.rest_dirs), self.rest_dirs[..., :K]
        )

    def joints(self, rotmats: Tensor, betas: Tensor) -> Tensor:
        """(B,24,3,3), (B,K) -> (B,29,3) posed joints, pelvis at its rest position (smplx convention)."""
        return forward_kinematics29(rotmats.to(self.rest_dirs), self.rest_joints(betas))[0]

    def encode(self, rotmats: Tensor, betas: Tensor) -> Tensor:
        """SMPL θ as (B,24,3,3) rotation matrices + betas (B,K) -> features (B, dim)."""
        rotmats = rotmats.to(self.rest_dirs)
        if self.representation == "rot6d":
            return encode_rot6d(rotmats)
        rest = self.rest_joints(betas)
        j, _ = forward_kinematics29(rotmats, rest)
        phi = twist_angles(rotmats, rest)
        cs = torch.stack([phi.cos(), phi.sin()], -1)
        return torch.cat([(j - j[:, :1]).reshape(-1, 87), cs.reshape(-1, 46)], 1)

    def decode(self, feats: Tensor, betas: Tensor, ik_method: str = "hybrik") -> Tensor:
        """features (B, dim) + betas (B,K) -> (B,24,3,3) local rotations (analytic IK for hybrik,
        ``ik_method`` as :func:`inverse_kinematics`)."""
        if feats.ndim != 2 or feats.shape[1] != self.dim:
            raise ValueError(
                f"features must be (B,{self.dim}) for {self.representation!r}, got {tuple(feats.shape)}"
            )
        feats = feats.to(self.rest_dirs)
        if self.representation == "rot6d":
            return decode_rot6d(feats)
        j, cs = split_features(feats)
        return inverse_kinematics(j, cs, self.rest_joints(betas), ik_method)

    def encode_axis_angle(self, global_orient: Tensor, body_pose: Tensor, betas: Tensor) -> Tensor:
        """global_orient (B,3), body_pose (B,69) axis-angle, betas (B,K) -> features (B, dim)."""
        pose = torch.cat([global_orient, body_pose], 1).reshape(-1, 24, 3)
        return self.encode(roma.rotvec_to_rotmat(pose.to(self.rest_dirs)), betas)


def split_features(feats: Tensor) -> tuple[Tensor, Tensor]:
    """(...,133) -> joints (...,29,3), twists (...,23,2)."""
    lead = feats.shape[:-1]
    return feats[..., :87].reshape(*lead, 29, 3), feats[..., 87:].reshape(*lead, 23, 2)


# ----------------------------------------------------------------------------------------------------
# normalisation statistics


@dataclass
class FeatureStats:
    """Per-dimension z-normalisation: ``(x − mean) / std``; ``std`` floored at ``min_std`` (the root
    joint's three coordinates are constant zeros)."""

    mean: Tensor  # (D,)
    std: Tensor  # (D,)

    @staticmethod
    def compute(feats: Tensor, min_std: float = 1e-3) -> FeatureStats:
        """feats (N, D) training features -> stats."""
        f = feats.reshape(-1, feats.shape[-1]).double()
        return FeatureStats(f.mean(0).float(), f.std(0).clamp_min(min_std).float())

    def normalize(self, x: Tensor) -> Tensor:
        return (x - self.mean.to(x)) / self.std.to(x)

    def unnormalize(self, x: Tensor) -> Tensor:
        return x * self.std.to(x) + self.mean.to(x)

    def to_tensors(self, prefix: str = "stats.") -> dict[str, Tensor]:
        return {prefix + "mean": self.mean.contiguous(), prefix + "std": self.std.contiguous()}

    @staticmethod
    def from_tensors(d: dict[str, Tensor], prefix: str = "stats.") -> FeatureStats:
        if prefix + "mean" not in d:
            raise KeyError(f"normalisation stats '{prefix}mean'/'{prefix}std' missing from the checkpoint")
        return FeatureStats(d[prefix + "mean"].float(), d[prefix + "std"].float())

    @staticmethod
    def identity(dim: int) -> FeatureStats:
        return FeatureStats(torch.zeros(dim), torch.ones(dim))


def twist_unit(feats: Tensor) -> Tensor:
    """Project the (cos, sin) pairs of hybrik features (...,133) onto the unit circle (after decoding)."""
    j, cs = split_features(feats)
    cs = cs / cs.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    return torch.cat([j.flatten(-2), cs.flatten(-2)], -1)


__all__ = [
    "FeatureStats",
    "HybrIKBody",
    "LEAF_NAMES",
    "NUM_FEATURES",
    "PARENTS_29",
    "SMPL_LEAF_VERTEX_IDS",
    "decode_rot6d",
    "encode_rot6d",
    "feature_dim",
    "forward_kinematics29",
    "inverse_kinematics",
    "leaf_vertex_ids",
    "split_features",
    "twist_angles",
    "twist_unit",
]
