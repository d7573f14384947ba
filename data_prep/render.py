"""CPU renderer of the embedded synthetic world: SMPL-format bodies ray-cast with trimesh + embreex.

One clip = a subject (the person every label refers to) + 0-3 distractor people (some overlapping the
subject: the paper's crowded-crop failure case iii) + 2D occluders (boxes / bars) in front of everything,
over a procedural background, seen by a pinhole camera that follows the subject with lag and drift.

Conventions
-----------
* World: SMPL's (Y up; :mod:`fasthmr_lib.data.motion` clips). Camera: OpenCV (x right, y down, z forward),
  ``x_cam = R x_world + T``; ``K`` in px with pixel centres at integer coordinates.
* Rays go through pixel centres; the first hit (``RayMeshIntersector.intersects_first``, embree) decides
  which person a pixel shows; its depth is the ray / triangle-plane intersection.
* Labels are in the camera frame: ``global_orient_c = R_c R_w`` and ``transl_c = R_c (J0 + t_w) + T_c - J0``
  (SMPL rotates about the rest pelvis J0 = ``J_regressor[0] @ v_shaped``), so that the body model evaluated
  with the camera-frame (theta, beta, transl) gives exactly the camera-frame mesh that was rendered.

Image size: 256 x 256. The subject's height covers 45-80% of the frame, so its HMR2.0 crop (square side
1.2 x box height) is 140-250 px: crops are never downscaled (no aliasing, no blur needed) and at most
~1.8x upsampled; 256 x 256 x 3 also keeps the default world near 1 GB raw and a few minutes to render.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np
import roma
import torch
from trimesh import Trimesh
from trimesh.ray.ray_pyembree import RayMeshIntersector

from fasthmr_lib.data import motion as M

RENDER_VERSION = 4  # bump when a change to this module changes its output (worlds then rebuild)

# SMPL part groups (joint indices of the 24-joint skeleton) used for clothing colours
_LEGS = (1, 2, 4, 5)
_FEET = (7, 8, 10, 11)
_TORSO = (0, 3, 6, 9, 13, 14)
_UPPER_ARMS = (16, 17)
_FOREARMS = (18, 19)
_HANDS = (20, 21, 22, 23)
_HEAD = (12, 15)
SKIN_TONES = np.array(
    [[255, 224, 196], [234, 192, 160], [208, 160, 120], [170, 120, 85], [120, 80, 55], [80, 55, 40]],
    np.float32,
)


@dataclass(frozen=True)
class RenderConfig:
    """Scene and camera parameters of one world (everything random is drawn from these ranges)."""

    image_size: int = 256
    focal_range: tuple[float, float] = (300.0, 480.0)  # px
    subject_height_frac: tuple[float, float] = (0.45, 0.8)  # of the image height, sets the distance
    elevation_deg: tuple[float, float] = (-5.0, 25.0)
    azimuth_drift_deg: float = 15.0  # slow orbit over a clip
    shake_px: float = 1.5  # high-frequency look-at jitter (in px at the subject)
    follow_window_s: float = 1.0  # camera follows the smoothed subject track (moving average)
    distractor_probs: tuple[float, ...] = (0.25, 0.35, 0.25, 0.15)  # P(0..3 distractors)
    overlap_prob: float = 0.6  # P(the first distractor overlaps the subject)
    occluder_prob: float = 0.5  # P(a clip has occluders)
    max_occluders: int = 2
    degrade: float = 1.0  # strength of the segmenter-like mask degradation (0 = exact copy)
    # front/back cues of the clothes and hair: "subtle" (the worlds since render version 2) or "strong"
    # (issue 16: a small ViT did not learn front from back on the subtle ones; see person_face_colors)
    front_cues: str = "subtle"

    def __post_init__(self) -> None:
        if self.front_cues not in ("subtle", "strong"):
            raise ValueError(
                f"RenderConfig.front_cues: expected 'subtle' or 'strong', got {self.front_cues!r}"
            )

    def to_dict(self) -> dict:
        """The fields as a dict; ``front_cues`` only when not "subtle", so the build parameters (and data
        versions) of the worlds made before it existed are unchanged."""
        d = asdict(self)
        if d["front_cues"] == "subtle":
            d.pop("front_cues")
        return d


# ------------------------------------------------------------------------------------------ geometry


_UP = np.array([0.0, 1.0, 0.0])


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray = _UP):
    """World->camera (R (3,3), T (3,)) of an OpenCV camera at ``eye`` looking at ``target`` (world Y up)."""
    z = target - eye
    z = z / np.linalg.norm(z)
    x = np.cross(-up, z)
    x = x / np.linalg.norm(x)
    y = np.cross(z, x)
    R = np.stack([x, y, z])
    return R, -R @ eye


def project(K: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Camera-frame points (..., 3) -> pixel coords (..., 2)."""
    p = X @ K.T
    return p[..., :2] / np.maximum(p[..., 2:3], 1e-6)


def to_camera_params(
    global_orient: np.ndarray, transl: np.ndarray, J0: np.ndarray, R: np.ndarray, T: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """World SMPL root (go (N,3) axis-angle, transl (N,3)) -> camera-frame root for extrinsics R (N,3,3),
    T (N,3) and rest pelvis J0 (3,): ``go_c = R go``, ``t_c = R (J0 + t) + T - J0``."""
    Rg = roma.rotvec_to_rotmat(torch.as_tensor(global_orient, dtype=torch.float64)).numpy()
    go_c = roma.rotmat_to_rotvec(torch.as_tensor(R @ Rg)).numpy()
    t_c = np.einsum("nij,nj->ni", R, J0[None] + transl) + T - J0[None]
    return go_c.astype(np.float32), t_c.astype(np.float32)


def smooth(x: np.ndarray, win: int) -> np.ndarray:
    """Moving average along axis 0 with edge padding (length preserved)."""
    if win <= 1:
        return x.copy()
    pad = win // 2
    xp = np.concatenate([np.repeat(x[:1], pad, 0), x, np.repeat(x[-1:], win - 1 - pad, 0)], 0)
    c = np.cumsum(np.concatenate([np.zeros_like(x[:1]), xp], 0), 0)
    return (c[win:] - c[:-win]) / win


# -------------------------------------------------------------------------------------- appearance


def _value_noise(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    g = rng.uniform(0, 1, (cells + 1, cells + 1)).astype(np.float32)
    return cv2.resize(g, (w, h), interpolation=cv2.INTER_CUBIC)


def make_background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Procedural RGB background (h,w,3) uint8: gradient / value noise / stripes / random rectangles,
    with a darker 'ground' below a random horizon."""
    c1, c2 = rng.uniform(20, 235, (2, 3)).astype(np.float32)
    kind = rng.integers(4)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if kind == 0:  # linear gradient
        a = rng.uniform(0, np.pi)
        s = (np.cos(a) * xx / w + np.sin(a) * yy / h) / (abs(np.cos(a)) + abs(np.sin(a)))
        img = c1 + (c2 - c1) * s[..., None]
    elif kind == 1:  # value noise
        n = 0.65 * _value_noise(rng, h, w, int(rng.integers(3, 8))) + 0.35 * _value_noise(rng, h, w, 24)
        img = c1 + (c2 - c1) * np.clip(n, 0, 1)[..., None]
    elif kind == 2:  # stripes
        a, period = rng.uniform(0, np.pi), rng.uniform(8, 40)
        s = 0.5 + 0.5 * np.sin(2 * np.pi * (np.cos(a) * xx + np.sin(a) * yy) / period)
        img = c1 + (c2 - c1) * s[..., None]
    else:  # random rectangles on a flat colour
        img = np.broadcast_to(c1, (h, w, 3)).copy()
        for _ in range(int(rng.integers(6, 20))):
            x0, y0 = rng.integers(0, w), rng.integers(0, h)
            x1, y1 = x0 + rng.integers(10, w // 3), y0 + rng.integers(10, h // 3)
            img[y0:y1, x0:x1] = rng.uniform(20, 235, 3)
    horizon = rng.uniform(0.45, 0.75) * h
    ground = np.clip((yy - horizon) / (0.1 * h), 0, 1)[..., None]
    gcol = rng.uniform(40, 160, 3).astype(np.float32)
    img = img * (1 - 0.6 * ground) + 0.6 * ground * gcol
    return np.clip(img, 0, 255).astype(np.uint8)


def person_face_colors(
    rng: np.random.Generator, lbs_weights: np.ndarray, v_template: np.ndarray, faces, strong: bool = False
):
    """Per-face RGB (F,3) float 0..255 of one person: skin, hair, shirt (plain / stripes / two-tone),
    short or long sleeves, trousers, shoes; parts from the skinning weights' argmax. ``strong``: front/back
    cues a small network can pick up (``RenderConfig.front_cues``): a large chest print on every shirt in a
    colour far from the shirt's, hair that contrasts with the skin (a face is a light or dark oval where the
    back of the head is the other), and back pockets on the trousers."""
    part = lbs_weights.argmax(1)[faces[:, 0]]
    y = v_template[faces, 1].mean(1)
    skin = SKIN_TONES[rng.integers(len(SKIN_TONES))] * rng.uniform(0.9, 1.05)
    shirt, shirt2, pants, shoes = rng.uniform(15, 240, (4, 3)).astype(np.float32)
    hair = rng.uniform(10, 120, 3).astype(np.float32)
    col = np.broadcast_to(skin, (len(faces), 3)).copy()
    style = rng.integers(3)
    top = np.isin(part, _TORSO + _UPPER_ARMS + (_FOREARMS if rng.uniform() < 0.5 else ()))
    if style == 0:
        col[top] = shirt
    elif style == 1:  # horizontal stripes
        period = rng.uniform(0.04, 0.12)
        on = (np.floor(y / period) % 2).astype(bool)
        col[top] = np.where(on[top, None], shirt, shirt2)
    else:  # two-tone: different colour on the sleeves
        col[top] = shirt
        col[top & np.isin(part, _UPPER_ARMS + _FOREARMS)] = shirt2
    # Front/back cues, as real people have (a face, a shirt print): without them a uniformly coloured
    # body seen from the front and from behind differs only in subtle geometry, and a regressor
    # cannot tell the global orientation apart (SMPL bodies face +z in the rest pose).
    # A small chest print and the back of the head were not enough for a small ViT trained from scratch
    # on CPU (orientation error stayed at chance), so the shirt's back differs from its front in
    # colour, and shoes have toe caps.
    z = v_template[faces, 2].mean(1)
    torso = np.isin(part, _TORSO) & top
    if torso.any():
        zt = np.median(z[torso])
        back = rng.uniform(15, 240, 3).astype(np.float32)
        if np.abs(back - shirt).sum() < 150:  # keep front and back clearly different
            back = 255.0 - shirt
        col[torso & (z < zt)] = back
        # "strong" draws the same random numbers as "subtle", so both render the same scenes
        printed = rng.uniform() < 0.8
        if printed:  # chest print: a patch on the front of the shirt
            y0, y1 = np.quantile(y[torso], [0.45, 0.8])
            col[torso & (z > zt) & (y > y0) & (y < y1)] = rng.uniform(15, 240, 3)
        if strong:  # a large chest print on every shirt, far from the shirt's colour
            y0, y1 = np.quantile(y[torso], [0.3, 0.85])
            col[torso & (z > zt) & (y > y0) & (y < y1)] = np.where(shirt < 128, 225.0, 30.0)  # >= 97 apart
    col[np.isin(part, _LEGS)] = pants
    thighs = np.isin(part, (1, 2))
    if strong and thighs.any():  # back pockets: darker patches on the seat of the trousers
        zp, yp = np.median(z[thighs]), np.quantile(y[thighs], 0.7)
        col[thighs & (z < zp) & (y > yp)] = pants * 0.45
    feet = np.isin(part, _FEET)
    col[feet] = shoes
    if feet.any():  # toe caps: the front part of each shoe
        col[feet & (z > np.quantile(z[feet], 0.6))] = np.clip(255.0 - shoes, 30, 230)
    head = np.isin(part, (15,))
    if strong:  # hair far from the skin tone: dark on light skin, light on dark skin (no new draws)
        lum = float(skin @ np.array([0.299, 0.587, 0.114]))
        u = (hair - 10.0) / 110.0  # the drawn hair colour, 0..1 per channel
        hair = (10.0 + 35.0 * u if lum > 110 else 170.0 + 60.0 * u).astype(np.float32)
    if head.any():
        yh = np.quantile(y[head], rng.uniform(0.45, 0.7))
        zh = np.median(z[head])
        col[head & (y > yh)] = hair
        col[head & (z < zh) & (y > np.quantile(y[head], 0.15))] = hair  # hair covers the back of the head
    return col


def degrade_mask(mask: np.ndarray, union: np.ndarray, rng: np.random.Generator, strength: float = 1.0):
    """A segmenter-like version of ``mask`` (H,W) bool: erosion or dilation, soft boundary jitter, holes,
    and occasional leakage into a neighbouring person (``union``). ``strength`` 0 returns a copy."""
    m = mask.copy()
    if strength <= 0 or not m.any():
        return m
    h, w = m.shape
    r = int(rng.integers(0, 1 + round(strength)))  # 0..1 px at strength 1
    m8 = m.astype(np.uint8)
    if r > 0:
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
        m8 = (cv2.erode if rng.uniform() < 0.5 else cv2.dilate)(m8, k)
    # boundary jitter: blur and threshold against a low-frequency noise field
    soft = cv2.GaussianBlur(m8.astype(np.float32), (0, 0), 0.6 + 0.6 * strength)
    thr = 0.5 + 0.2 * strength * (_value_noise(rng, h, w, 6) - 0.5)
    m = soft > thr
    for _ in range(int(rng.poisson(1.0 * strength))):  # holes
        ys, xs = np.nonzero(m)
        if len(ys) == 0:
            break
        i = rng.integers(len(ys))
        ax = tuple(int(v) for v in rng.integers(2, 3 + int(4 * strength), 2))
        hole = np.zeros((h, w), np.uint8)
        cv2.ellipse(hole, (int(xs[i]), int(ys[i])), ax, float(rng.uniform(0, 180)), 0, 360, 1, -1)
        m &= ~hole.astype(bool)
    if rng.uniform() < 0.3 * strength:  # leak into a touching neighbour
        near = cv2.dilate(mask.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
        m |= union & near & ~mask
    return m


# ------------------------------------------------------------------------------------------ scene


def face_part_labels(lbs_weights: np.ndarray, v_template: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Dense label of every mesh face (F,) uint8 in 1..48: ``1 + part + 24 * back``.

    ``part`` (0..23) is the SMPL joint whose skinning weight dominates the face's first vertex, so left and
    right limbs are distinct parts; ``back`` is 1 where the face's normal in the rest pose points backwards
    (z < 0: SMPL bodies face +z), i.e. the pixel shows the back of the body (the back of the head, the
    back of the shirt, a calf) rather than its front (face, chest, shins). 0 is left for "not the subject".
    Per-pixel body-part targets as in SURREAL (Varol et al. CVPR 2017); the front/back bit is ours.
    lbs_weights (V, 24), v_template (V, 3) m, faces (F, 3) vertex indices."""
    part = lbs_weights.argmax(1)[faces[:, 0]]
    tri = v_template[faces]
    nz = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])[:, 2]
    return (1 + part + 24 * (nz < 0)).astype(np.uint8)


class _Body:
    """Per-process cache of the body model and its constant arrays."""

    def __init__(self, body):
        self.body = body
        self.faces = np.asarray(body.faces, np.int64)
        self.lbs = body.lbs_weights.detach().cpu().numpy()
        self.v_template = body.v_template.detach().cpu().numpy()
        self.face_labels = face_part_labels(self.lbs, self.v_template, self.faces)

    @torch.no_grad()
    def pose(self, go: np.ndarray, bp: np.ndarray, betas: np.ndarray, transl: np.ndarray) -> dict:
        T = go.shape[0]
        pose = torch.from_numpy(np.concatenate([go, bp], 1).astype(np.float32))
        b = torch.from_numpy(np.broadcast_to(betas, (T, 10)).astype(np.float32).copy())
        out = self.body.from_axis_angle(pose, b, torch.from_numpy(transl.astype(np.float32)))
        return {k: v.numpy().astype(np.float64) for k, v in out.items()}

    @torch.no_grad()
    def rest_pelvis(self, betas: np.ndarray) -> np.ndarray:
        out = self.body.from_axis_angle(
            torch.zeros(1, 72), torch.from_numpy(np.asarray(betas, np.float32).reshape(1, 10))
        )
        return out["joints24"][0, 0].numpy().astype(np.float64)


def _every(clip: dict, stride: int) -> dict:
    """Every ``stride``-th frame of a :func:`motion.generate_clip` result (per-frame arrays; fps adjusted)."""
    if stride == 1:
        return clip
    out = dict(clip)
    for k in ("global_orient", "body_pose", "transl"):
        out[k] = clip[k][::stride]
    out["fps"] = clip["fps"] / stride
    return out


def _sample_count(rng: np.random.Generator, probs: tuple[float, ...]) -> int:
    p = np.asarray(probs, float)
    return int(rng.choice(len(p), p=p / p.sum()))


def render_clip(
    body,
    kind: str,
    n_frames: int,
    seed: int,
    cfg: RenderConfig = RenderConfig(),
    *,
    clip_id: str = "clip",
    split: str = "train",
    frame_stride: int = 1,
) -> dict[str, np.ndarray]:
    """Render one clip; returns the clip-record arrays of :mod:`fasthmr_lib.data.records` (plus extras
    ``joints3d`` (T,44,3) camera-frame m, ``kind``, ``n_distractors``, ``silhouette_px`` (T,)), including
    the dense ``part_labels`` (T,H,W) uint8 of the subject's visible pixels (:func:`face_part_labels`, 0
    elsewhere).

    ``body``: a :class:`fasthmr_lib.body.smpl.SMPLBody`. ``frame_stride`` s > 1 generates the motion over
    ``n_frames * s`` frames (a whole action: a squat, a turn) and renders every s-th one, at ``30 / s`` fps;
    training worlds use it to get many people, cameras and poses per rendered frame.
    Deterministic for (kind, n_frames, seed, cfg, frame_stride); ``frame_stride=1`` is the plain clip."""
    stride = int(frame_stride)
    if stride < 1:
        raise ValueError(f"frame_stride must be >= 1, got {frame_stride!r}")
    bc = body if isinstance(body, _Body) else _Body(body)
    rng = np.random.default_rng(np.random.SeedSequence([seed, M.KINDS.index(kind), n_frames, 7]))
    H = W = int(cfg.image_size)
    fps = M.FPS / stride
    T = n_frames

    # ---- subject motion (world)
    sub = _every(M.generate_clip(kind, n_frames * stride, seed=int(rng.integers(2**31))), stride)
    floor = M.floor_height(bc.body, sub["betas"])
    sw = bc.pose(sub["global_orient"], sub["body_pose"], sub["betas"], sub["transl"])
    height = float(
        np.ptp(
            bc.pose(np.zeros((1, 3)), np.zeros((1, 69)), sub["betas"], np.zeros((1, 3)))["vertices"][0, :, 1]
        )
    )

    # ---- camera: follows the smoothed pelvis track, slow orbit, elevation, look-at jitter
    f = float(rng.uniform(*cfg.focal_range))
    K = np.array([[f, 0, (W - 1) / 2], [0, f, (H - 1) / 2], [0, 0, 1]], np.float64)
    frac = rng.uniform(*cfg.subject_height_frac)
    dist = f * height / (frac * H)
    pelvis = sw["joints24"][:, 0]
    track = smooth(pelvis, max(1, int(cfg.follow_window_s * fps)))
    az0 = rng.uniform(-np.pi, np.pi)
    az = az0 + np.deg2rad(cfg.azimuth_drift_deg) * rng.uniform(-1, 1) * np.linspace(0, 1, T)
    el = np.deg2rad(rng.uniform(*cfg.elevation_deg))
    offs = np.stack([np.sin(az) * np.cos(el), np.full(T, np.sin(el)), np.cos(az) * np.cos(el)], 1) * dist
    eye = track + offs
    target = track + np.array([0.0, rng.uniform(-0.15, 0.15), 0.0])
    shake = smooth(rng.normal(0, 1, (T, 3)), 3) * cfg.shake_px * dist / f
    cam_R = np.zeros((T, 3, 3))
    cam_T = np.zeros((T, 3))
    for t in range(T):
        cam_R[t], cam_T[t] = look_at(eye[t], target[t] + shake[t])

    # ---- distractors: own limb motion, root placed relative to the subject's smoothed track
    n_dis = _sample_count(rng, cfg.distractor_probs)
    strong = cfg.front_cues == "strong"
    people = [
        dict(verts=sw["vertices"], colors=person_face_colors(rng, bc.lbs, bc.v_template, bc.faces, strong))
    ]
    right0, fwd0 = cam_R[0, 0], cam_R[0, 2]  # camera axes in the world at t=0
    path = smooth(np.asarray(sub["transl"], np.float64), max(1, int(cfg.follow_window_s * fps)))
    for d in range(n_dis):
        dk = str(rng.choice(M.BASE_KINDS))
        dm = _every(M.generate_clip(dk, n_frames * stride, seed=int(rng.integers(2**31))), stride)
        if d == 0 and rng.uniform() < cfg.overlap_prob:
            lat = rng.choice([-1, 1]) * rng.uniform(0.25, 0.6)
            dep = rng.choice([-1, 1]) * rng.uniform(0.5, 1.2)
        else:
            lat = rng.choice([-1, 1]) * rng.uniform(0.6, 1.8)
            dep = rng.uniform(-1.0, 3.0)
        dep = max(dep, -(dist - 1.5))  # stay >= 1.5 m in front of the camera
        off = lat * np.array([right0[0], 0, right0[2]]) + dep * np.array([fwd0[0], 0, fwd0[2]])
        dfloor = M.floor_height(bc.body, dm["betas"])
        dtr = np.array(dm["transl"], np.float64)
        # follow the subject's smoothed path (+ 15% of the distractor's own travel), on the same floor
        dtr[:, [0, 2]] = path[:, [0, 2]] + off[[0, 2]] + 0.15 * (dtr[:, [0, 2]] - dtr[:1, [0, 2]])
        dtr[:, 1] += floor - dfloor
        dv = bc.pose(dm["global_orient"], dm["body_pose"], dm["betas"], dtr)["vertices"]
        people.append(dict(verts=dv, colors=person_face_colors(rng, bc.lbs, bc.v_template, bc.faces, strong)))

    # ---- background canvas (directions at infinity, warped by the camera rotation), occluders, light
    margin = W // 2
    canvas = make_background(rng, H + 2 * margin, W + 2 * margin)
    light = np.array([rng.uniform(-0.6, 0.6), rng.uniform(-0.9, -0.2), -1.0])
    light /= np.linalg.norm(light)
    ambient = rng.uniform(0.3, 0.45)
    occluders = []
    if rng.uniform() < cfg.occluder_prob:
        for _ in range(int(rng.integers(1, cfg.max_occluders + 1))):
            vertical = rng.uniform() < 0.6
            occluders.append(
                dict(
                    vertical=vertical,
                    pos=rng.uniform(0.3, 0.7),  # fraction of the subject box where the bar sits at t=0
                    width=rng.uniform(0.08, 0.3),  # fraction of the subject box size
                    speed=rng.uniform(-0.4, 0.4),  # box fractions per second
                    extent=(rng.uniform(0.0, 0.4), rng.uniform(0.6, 1.2)),
                    color=rng.uniform(20, 235, 3),
                )
            )

    # ---- per-frame rendering
    F = len(bc.faces)
    images = np.zeros((T, H, W, 3), np.uint8)
    mask = np.zeros((T, H, W), bool)
    union = np.zeros((T, H, W), bool)
    degraded = np.zeros((T, H, W), bool)
    part_labels = np.zeros((T, H, W), np.uint8)
    boxes = np.zeros((T, 4), np.float32)
    occl = np.zeros(T, np.float32)
    sil_px = np.zeros(T, np.int32)
    j44_c = np.einsum("tij,tkj->tki", cam_R, sw["joints44"]) + cam_T[:, None]
    j2d = np.zeros((T, 44, 3), np.float32)
    j2d[..., :2] = project(K, j44_c)
    Kinv = np.linalg.inv(K)
    jj, ii = np.meshgrid(np.arange(W, dtype=np.float64), np.arange(H, dtype=np.float64))
    dirs_all = np.stack([jj, ii, np.ones_like(jj)], -1) @ Kinv.T  # (H,W,3), z = 1
    Hom0 = K @ cam_R[0]
    shift = np.array([[1, 0, margin], [0, 1, margin], [0, 0, 1]], np.float64)
    for t in range(T):
        Rt, Tt = cam_R[t], cam_T[t]
        # background: pixel direction d = R_t^T K^-1 p  ->  canvas pixel of the t=0 camera
        Hm = shift @ Hom0 @ Rt.T @ Kinv
        img = cv2.warpPerspective(
            canvas, Hm, (W, H), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REFLECT
        )
        img = img.astype(np.float32)
        vc = [p["verts"][t] @ Rt.T + Tt for p in people]
        uv = [project(K, v) for v in vc]
        # rays only inside the union of the people's projected boxes (clipped to the image)
        x0 = int(np.clip(min(u[:, 0].min() for u in uv) - 1, 0, W))
        x1 = int(np.clip(max(u[:, 0].max() for u in uv) + 2, 0, W))
        y0 = int(np.clip(min(u[:, 1].min() for u in uv) - 1, 0, H))
        y1 = int(np.clip(max(u[:, 1].max() for u in uv) + 2, 0, H))
        u_s = uv[0]
        boxes[t] = [
            np.clip(u_s[:, 0].min(), 0, W - 1), np.clip(u_s[:, 1].min(), 0, H - 1),
            np.clip(u_s[:, 0].max(), 0, W - 1), np.clip(u_s[:, 1].max(), 0, H - 1),
        ]  # fmt: skip
        owner = np.full((H, W), -1, np.int64)
        face = np.zeros((H, W), np.int64)  # face index within its person's mesh (where owner >= 0)
        depth = np.full((H, W), np.inf)
        shade_rgb = np.zeros((H, W, 3), np.float32)
        sub_hidden = np.zeros((H, W), bool)
        if x1 > x0 and y1 > y0:
            V = np.concatenate(vc, 0)
            Fall = np.concatenate([bc.faces + i * len(vc[0]) for i in range(len(vc))], 0)
            tri = V[Fall]
            nrm = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
            nrm /= np.maximum(np.linalg.norm(nrm, axis=1, keepdims=True), 1e-12)
            d = dirs_all[y0:y1, x0:x1].reshape(-1, 3)
            hit = RayMeshIntersector(Trimesh(V, Fall, process=False)).intersects_first(np.zeros_like(d), d)
            ok = hit >= 0
            h = hit[ok]
            dd = d[ok]
            n = nrm[h]
            dep = (n * tri[h, 0]).sum(1) / np.where(np.abs((n * dd).sum(1)) < 1e-12, 1e-12, (n * dd).sum(1))
            n = np.where(((n * dd).sum(1) > 0)[:, None], -n, n)  # face the camera (two-sided)
            lam = ambient + (1 - ambient) * np.clip(-(n @ light), 0, 1)
            cols = np.concatenate([p["colors"] for p in people], 0)[h] * lam[:, None]
            sub_owner = np.full(d.shape[0], -1, np.int64)
            sub_owner[ok] = h // F
            sub_depth = np.full(d.shape[0], np.inf)
            sub_depth[ok] = dep
            sub_rgb = np.zeros((d.shape[0], 3), np.float32)
            sub_rgb[ok] = cols
            owner[y0:y1, x0:x1] = sub_owner.reshape(y1 - y0, x1 - x0)
            sub_face = np.zeros(d.shape[0], np.int64)
            sub_face[ok] = h % F
            face[y0:y1, x0:x1] = sub_face.reshape(y1 - y0, x1 - x0)
            depth[y0:y1, x0:x1] = sub_depth.reshape(y1 - y0, x1 - x0)
            shade_rgb[y0:y1, x0:x1] = sub_rgb.reshape(y1 - y0, x1 - x0, 3)
            # subject pixels hidden behind a distractor: cast those rays against the subject alone
            other = sub_owner > 0
            if other.any() and len(vc) > 1:
                hs = RayMeshIntersector(Trimesh(vc[0], bc.faces, process=False)).intersects_first(
                    np.zeros_like(d[other]), d[other]
                )
                hid = np.zeros(d.shape[0], bool)
                hid[np.nonzero(other)[0][hs >= 0]] = True
                sub_hidden[y0:y1, x0:x1] = hid.reshape(y1 - y0, x1 - x0)
        people_px = owner >= 0
        img[people_px] = shade_rgb[people_px]
        vis_sub = owner == 0
        # occluders: bars in front of everything, positioned relative to the subject's box
        occ = np.zeros((H, W), bool)
        bx0, by0, bx1, by1 = boxes[t]
        bw, bh = max(bx1 - bx0, 1.0), max(by1 - by0, 1.0)
        for o in occluders:
            c = o["pos"] + o["speed"] * t / fps
            if o["vertical"]:
                cx = bx0 + c * bw
                hw = 0.5 * o["width"] * bw
                ya, yb = by0 + o["extent"][0] * bh - 0.5 * bh, by0 + o["extent"][1] * bh + 0.5 * bh
                r = (int(round(cx - hw)), int(round(ya)), int(round(cx + hw)), int(round(yb)))
            else:
                cy = by0 + c * bh
                hh = 0.5 * o["width"] * bh * 0.6
                xa, xb = bx0 + o["extent"][0] * bw - 0.5 * bw, bx0 + o["extent"][1] * bw
                r = (int(round(xa)), int(round(cy - hh)), int(round(xb)), int(round(cy + hh)))
            xa, ya, xb, yb = max(r[0], 0), max(r[1], 0), min(r[2], W), min(r[3], H)
            if xb <= xa or yb <= ya:
                continue
            occ[ya:yb, xa:xb] = True
            g = np.linspace(0.75, 1.1, xb - xa if o["vertical"] else yb - ya, dtype=np.float32)
            g = g[None, :, None] if o["vertical"] else g[:, None, None]
            img[ya:yb, xa:xb] = np.clip(o["color"][None, None] * g, 0, 255)
        sil = vis_sub | sub_hidden  # full subject silhouette (in the image)
        mask[t] = vis_sub & ~occ
        part_labels[t][mask[t]] = bc.face_labels[face[mask[t]]]
        union[t] = people_px & ~occ
        sil_px[t] = int(sil.sum())
        occl[t] = 1.0 - mask[t].sum() / max(sil_px[t], 1)
        degraded[t] = degrade_mask(mask[t], union[t], rng, cfg.degrade)
        images[t] = np.clip(np.rint(img), 0, 255).astype(np.uint8)
        # keypoint visibility: inside the image and not behind another person or an occluder
        u = np.rint(j2d[t, :, 0]).astype(int)
        v = np.rint(j2d[t, :, 1]).astype(int)
        inside = (u >= 0) & (u < W) & (v >= 0) & (v < H) & (j44_c[t, :, 2] > 0)
        uc, vc_ = np.clip(u, 0, W - 1), np.clip(v, 0, H - 1)
        behind_other = (owner[vc_, uc] > 0) & (depth[vc_, uc] < j44_c[t, :, 2])
        j2d[t, :, 2] = (inside & ~behind_other & ~occ[vc_, uc]).astype(np.float32)

    # ---- labels in the camera frame
    J0 = bc.rest_pelvis(sub["betas"])
    go_c, tr_c = to_camera_params(sub["global_orient"], sub["transl"], J0, cam_R, cam_T)
    return {
        "images": images,
        "boxes": boxes,
        "mask": mask,
        "mask_union": union,
        "mask_degraded": degraded,
        "part_labels": part_labels,
        "global_orient": go_c,
        "body_pose": sub["body_pose"].astype(np.float32),
        "betas": np.tile(sub["betas"][None], (T, 1)).astype(np.float32),
        "transl": tr_c,
        "K": K.astype(np.float32),
        "cam_R": cam_R.astype(np.float32),
        "cam_T": cam_T.astype(np.float32),
        "joints2d": j2d,
        "fps": np.array(fps, np.float32),
        "occlusion": occl,
        "clip_id": np.array(clip_id),
        "split": np.array(split),
        "source": np.array("synthetic"),
        "gender": np.array("neutral"),
        "joints3d": j44_c.astype(np.float32),
        "kind": np.array(sub["kind"]),
        "n_distractors": np.array(n_dis, np.int64),
        "silhouette_px": sil_px,
    }
