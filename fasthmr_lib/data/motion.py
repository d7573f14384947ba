"""Procedural SMPL motion: plausible pose sequences at 30 fps (walk, run, turn, reach, wave, squat, sit,
jump and blends), the motion source of the embedded synthetic world and the motion-prior training data
when AMASS is absent.

Conventions (SMPL's): world frame Y up, a body with identity global orientation faces +Z, its left is +X.
Joint rotations are built as intrinsic XYZ Euler angles per joint (``roma.euler_to_rotmat("XYZ", ...)``)
in SMPL's rest frames (T-pose, frames aligned with the world), then stored as axis-angle:

* hips (1 L, 2 R): x = -flexion (thigh forward), z = +/-abduction, y = twist;
* knees (4, 5): x = flexion (shin backward, >= 0); ankles (7, 8): x = plantar flexion;
* spine1/2/3 (3, 6, 9), neck (12), head (15): x = forward bend, y = twist, z = side bend;
* shoulders (16 L, 17 R): z = -/+ arm lowering from the T-pose, x = -swing forward (arm hanging),
  y = forward flexion of the horizontal arm; elbows (18 L, 19 R): y = -/+ flexion.

A clip is built from smooth functions only (sinusoids, cosine ramps, low-frequency noise), joint angles are
soft-clipped to :data:`JOINT_LIMITS` (a smooth tanh clip, so limits add no kinks), the heading is kept
inside (-pi, pi) so the global axis-angle never wraps, and translation is integrated from speed and
heading. ``transl[:, 1]`` is the vertical offset from standing (0 when standing; negative when crouching,
positive in flight): put the floor at the standing body's lowest vertex (:func:`floor_height`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import roma
import torch

FPS = 30.0
KINDS = ("walk", "run", "turn", "reach", "wave", "squat", "sit", "jump", "blend")
BASE_KINDS = KINDS[:-1]

# (lower, upper) radians per joint and Euler axis (x, y, z); joint 0 (pelvis tilt on top of the heading).
_D = np.deg2rad
JOINT_LIMITS = np.zeros((24, 3, 2))
_lim = {
    0: [(-25, 25), (-20, 20), (-15, 15)],
    1: [(-125, 30), (-35, 35), (-20, 45)], 2: [(-125, 30), (-35, 35), (-45, 20)],
    3: [(-20, 45), (-25, 25), (-20, 20)], 6: [(-15, 35), (-25, 25), (-15, 15)],
    9: [(-15, 30), (-25, 25), (-15, 15)],
    4: [(0, 150), (-10, 10), (-5, 5)], 5: [(0, 150), (-10, 10), (-5, 5)],
    7: [(-35, 45), (-15, 15), (-20, 20)], 8: [(-35, 45), (-15, 15), (-20, 20)],
    10: [(-30, 30), (-5, 5), (-5, 5)], 11: [(-30, 30), (-5, 5), (-5, 5)],
    12: [(-30, 40), (-35, 35), (-25, 25)], 15: [(-30, 40), (-45, 45), (-25, 25)],
    13: [(-15, 15), (-20, 20), (-10, 25)], 14: [(-15, 15), (-20, 20), (-25, 10)],
    16: [(-120, 60), (-85, 40), (-95, 90)], 17: [(-120, 60), (-40, 85), (-90, 95)],
    18: [(-10, 10), (-145, 0), (-10, 10)], 19: [(-10, 10), (0, 145), (-10, 10)],
    20: [(-60, 60), (-30, 30), (-60, 60)], 21: [(-60, 60), (-30, 30), (-60, 60)],
    22: [(-20, 20), (-20, 20), (-20, 20)], 23: [(-20, 20), (-20, 20), (-20, 20)],
}  # fmt: skip
for _j, _axes in _lim.items():
    JOINT_LIMITS[_j] = _D(np.array(_axes, float))
L_HIP, R_HIP, L_KNEE, R_KNEE, L_ANKLE, R_ANKLE = 1, 2, 4, 5, 7, 8
SPINE = (3, 6, 9)
NECK, HEAD, L_SH, R_SH, L_WR, R_WR = 12, 15, 16, 17, 20, 21
# Euler order per joint: the middle axis must stay within +/-90 deg (no gimbal ambiguity), so the elbows,
# whose flexion (y) reaches 145 deg, use Y first (R = Ry Rx Rz); every other joint uses R = Rx Ry Rz.
L_EL, R_EL = 18, 19
_YXZ_JOINTS = (L_EL, R_EL)
THIGH, SHIN = 0.40, 0.42  # nominal segment lengths (m) for the pelvis drop of bent legs


@dataclass
class _Motion:
    """Per-frame drivers of a clip (T frames): Euler angles (T,24,3) (joint 0 = pelvis tilt), forward speed
    (T,) m/s, yaw rate (T,) rad/s, vertical offset (T,) m, sideways speed (T,) m/s."""

    euler: np.ndarray
    speed: np.ndarray
    yaw_rate: np.ndarray
    height: np.ndarray
    side: np.ndarray

    def blend(self, other: _Motion, w: np.ndarray) -> _Motion:
        """(1-w) * self + w * other, w (T,) in [0, 1]."""
        out = {}
        for f in fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            ww = w.reshape((-1,) + (1,) * (a.ndim - 1))
            out[f.name] = (1 - ww) * a + ww * b
        return _Motion(**out)


def _ramp(t: np.ndarray, t0: float, dur: float) -> np.ndarray:
    """Smooth 0 -> 1 (cosine) between t0 and t0 + dur."""
    x = np.clip((t - t0) / max(dur, 1e-6), 0.0, 1.0)
    return 0.5 - 0.5 * np.cos(np.pi * x)


def _pulse(t: np.ndarray, t0: float, rise: float, hold: float, fall: float) -> np.ndarray:
    """0 -> 1 -> 0: rises from t0 over ``rise`` s, holds ``hold`` s, falls over ``fall`` s."""
    return _ramp(t, t0, rise) * (1.0 - _ramp(t, t0 + rise + hold, fall))


def _noise(t: np.ndarray, rng: np.random.Generator, amp: float, fmax: float = 0.6, n: int = 3) -> np.ndarray:
    """Smooth low-frequency noise: a sum of ``n`` random sinusoids below ``fmax`` Hz, std ~ amp."""
    out = np.zeros_like(t)
    for _ in range(n):
        f = rng.uniform(0.1, fmax)
        out += np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
    return amp * out / np.sqrt(n / 2)


def _leg_drop(hip_flex: np.ndarray, knee_flex: np.ndarray) -> np.ndarray:
    """Pelvis height change (m, <= 0) for a planar leg with hip flexion / knee flexion (rad)."""
    reach = THIGH * np.cos(hip_flex) + SHIN * np.cos(hip_flex - knee_flex)
    return reach - (THIGH + SHIN)


def _standing(t: np.ndarray, rng: np.random.Generator) -> _Motion:
    """Relaxed standing: arms down, small sway and breathing; the base every action is layered on."""
    T = t.size
    e = np.zeros((T, 24, 3))
    down = rng.uniform(1.15, 1.35)  # shoulder lowering from the T-pose (rad)
    e[:, L_SH, 2] = -down + _noise(t, rng, 0.04)
    e[:, R_SH, 2] = down + _noise(t, rng, 0.04)
    e[:, L_SH, 0] = -0.05 + _noise(t, rng, 0.03)
    e[:, R_SH, 0] = -0.05 + _noise(t, rng, 0.03)
    elbow = rng.uniform(0.1, 0.35)
    e[:, L_EL, 1] = -elbow + _noise(t, rng, 0.04)
    e[:, R_EL, 1] = elbow + _noise(t, rng, 0.04)
    for j in SPINE:
        e[:, j, 0] = _noise(t, rng, 0.015, 0.3)
        e[:, j, 2] = _noise(t, rng, 0.01, 0.3)
    e[:, NECK, 0] = _noise(t, rng, 0.03, 0.4)
    e[:, HEAD, 1] = _noise(t, rng, 0.08, 0.3)
    e[:, HEAD, 0] = _noise(t, rng, 0.04, 0.4)
    e[:, 0, 2] = _noise(t, rng, 0.015, 0.3)
    stance = rng.uniform(0.0, 0.08)
    e[:, L_HIP, 2] = stance
    e[:, R_HIP, 2] = -stance
    z = np.zeros(T)
    return _Motion(e, z.copy(), z.copy(), z.copy(), z.copy())


def _gait(t: np.ndarray, rng: np.random.Generator, run: bool) -> _Motion:
    m = _standing(t, rng)
    e = m.euler
    freq = rng.uniform(1.3, 1.5) if run else rng.uniform(0.85, 1.05)  # stride (two steps) per second
    phi = 2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi)
    hip_a = rng.uniform(0.6, 0.8) if run else rng.uniform(0.35, 0.45)
    knee_a = rng.uniform(1.3, 1.7) if run else rng.uniform(0.9, 1.1)
    lean = rng.uniform(0.12, 0.25) if run else rng.uniform(0.0, 0.06)
    for hip, knee, ankle, off in ((L_HIP, L_KNEE, L_ANKLE, 0.0), (R_HIP, R_KNEE, R_ANKLE, np.pi)):
        ph = phi + off
        flex = hip_a * np.sin(ph) + (0.25 if run else 0.05)
        e[:, hip, 0] = -flex
        # knee bends most while the leg swings forward (just after toe-off)
        swing = (0.5 + 0.5 * np.cos(ph - 0.6 * np.pi)) ** 2
        e[:, knee, 0] = 0.08 + knee_a * swing + (0.3 if run else 0.0)
        e[:, ankle, 0] = 0.25 * np.sin(ph - 0.9) * (1.4 if run else 1.0)
    arm_a = rng.uniform(0.5, 0.8) if run else rng.uniform(0.2, 0.4)
    e[:, L_SH, 0] += arm_a * np.sin(phi)  # arms swing opposite to the legs (x = -forward swing)
    e[:, R_SH, 0] += -arm_a * np.sin(phi)
    if run:
        e[:, L_EL, 1] += -1.2
        e[:, R_EL, 1] += 1.2
    for j in SPINE:
        e[:, j, 1] += 0.06 * np.sin(phi)
        e[:, j, 0] += lean / 3
    e[:, 0, 1] += 0.08 * np.sin(phi)
    e[:, 0, 0] += lean / 2
    speed = (rng.uniform(2.5, 3.5) if run else rng.uniform(1.0, 1.5)) * np.ones_like(t)
    bob = (0.05 if run else 0.02) * np.cos(2 * phi)
    base = _leg_drop(np.full_like(t, 0.25 if run else 0.05), np.full_like(t, 0.5 if run else 0.1))
    return _Motion(e, speed, m.yaw_rate, base + bob, m.side)


def _walk(t, rng):
    m = _gait(t, rng, run=False)
    m.yaw_rate = _noise(t, rng, 0.15, 0.2)
    return m


def _run(t, rng):
    m = _gait(t, rng, run=True)
    m.yaw_rate = _noise(t, rng, 0.1, 0.2)
    return m


def _turn(t, rng):
    """Walk (or step in place) while turning by up to +/-150 degrees, once or twice."""
    m = _gait(t, rng, run=False)
    dur = t[-1] + 1.0 / FPS
    if rng.random() < 0.4:  # turn in place: small steps, no forward speed
        m.speed *= 0.0
        m.euler[:, [L_HIP, R_HIP, L_KNEE, R_KNEE], 0] *= 0.4
    n_turns = 1 if dur < 6 or rng.random() < 0.5 else 2
    yaw_rate = np.zeros_like(t)
    for k in range(n_turns):
        t0 = dur * (k + rng.uniform(0.15, 0.45)) / n_turns
        length = rng.uniform(1.2, 2.5)
        angle = rng.choice([-1, 1]) * rng.uniform(np.pi / 3, np.pi * 0.8)
        # a cosine-shaped yaw-rate pulse integrates to ``angle`` over ``length`` seconds
        x = np.clip((t - t0) / length, 0, 1)
        yaw_rate += angle / length * (1 - np.cos(2 * np.pi * x)) * ((t >= t0) & (t <= t0 + length))
    m.yaw_rate = yaw_rate
    for j in SPINE:
        m.euler[:, j, 1] += 0.08 * yaw_rate
    m.euler[:, HEAD, 1] += 0.15 * yaw_rate
    return m


def _arm_action(t, rng, wave: bool) -> _Motion:
    m = _standing(t, rng)
    e = m.euler
    dur = t[-1] + 1.0 / FPS
    side = rng.choice([0, 1]) if rng.random() < 0.8 else 2  # 2 = both arms
    arms = [(L_SH, L_EL, -1.0), (R_SH, R_EL, 1.0)]
    use = arms if side == 2 else [arms[side]]
    n_actions = max(1, int(dur // rng.uniform(3.0, 5.0)))
    for k in range(n_actions):
        t0 = dur * k / n_actions + rng.uniform(0.2, 0.8)
        rise, hold, fall = rng.uniform(0.6, 1.0), rng.uniform(0.5, 1.5), rng.uniform(0.6, 1.0)
        w = _pulse(t, t0, rise, hold, fall)
        for sh, el, sgn in use:
            if wave:
                # upper arm about horizontal, twisted -90 deg about its axis so the elbow flexes in the
                # frontal plane (forearm up); the wave oscillates the elbow flexion (hand swings sideways)
                up = rng.uniform(-0.1, 0.25)
                f = rng.uniform(1.5, 2.5)
                e[:, sh, 2] += w * (-sgn * up - e[:, sh, 2])
                e[:, sh, 0] += w * (-1.45 - e[:, sh, 0])
                e[:, el, 1] += w * (sgn * (1.5 + 0.3 * np.sin(2 * np.pi * f * t)) - e[:, el, 1])
            else:
                # reach: point the arm forward (y flexion) and up/down, elbow extends
                elev = rng.uniform(-0.5, 0.7)  # above / below horizontal
                fwd = rng.uniform(0.7, 1.2)
                e[:, sh, 2] += w * (-sgn * elev - e[:, sh, 2])
                e[:, sh, 1] += w * sgn * fwd
                e[:, sh, 0] += w * (0.0 - e[:, sh, 0])
                e[:, el, 1] += w * (sgn * 0.1 - e[:, el, 1])
                for j in SPINE:
                    e[:, j, 0] += w * rng.uniform(0.0, 0.1)
                    e[:, j, 1] += w * (-sgn) * 0.08
    return m


def _reach(t, rng):
    return _arm_action(t, rng, wave=False)


def _wave(t, rng):
    return _arm_action(t, rng, wave=True)


def _crouch(t, rng, kind: str) -> _Motion:
    m = _standing(t, rng)
    e = m.euler
    dur = t[-1] + 1.0 / FPS
    w = np.zeros_like(t)
    period = rng.uniform(2.5, 4.0) if kind == "squat" else rng.uniform(4.0, 7.0)
    n = max(1, int(dur // period))
    for k in range(n):
        t0 = dur * k / n + rng.uniform(0.2, 0.6)
        if kind == "squat":
            w = np.maximum(
                w, _pulse(t, t0, rng.uniform(0.8, 1.2), rng.uniform(0.1, 0.5), rng.uniform(0.8, 1.2))
            )
        else:
            w = np.maximum(
                w, _pulse(t, t0, rng.uniform(1.0, 1.5), rng.uniform(1.5, 3.0), rng.uniform(1.0, 1.5))
            )
    depth = rng.uniform(0.7, 1.0)
    if kind == "squat":
        hip, knee, ankle, lean = 1.7 * depth, 2.1 * depth, -0.5 * depth, 0.35 * depth
    else:  # sit on an (invisible) chair: thighs horizontal, shins vertical
        hip, knee, ankle, lean = 1.5, 1.5, 0.0, 0.15
    for h, k, a in ((L_HIP, L_KNEE, L_ANKLE), (R_HIP, R_KNEE, R_ANKLE)):
        e[:, h, 0] += -hip * w
        e[:, k, 0] += knee * w
        e[:, a, 0] += ankle * w
    # the pelvis tilts forward with the thighs; the spine compensates to keep the chest up
    e[:, 0, 0] += lean * w
    e[:, 3, 0] += -0.3 * lean * w
    arms_fwd = 1.2 if kind == "squat" and rng.random() < 0.6 else 0.3
    e[:, L_SH, 2] += w * 0.4 * arms_fwd
    e[:, R_SH, 2] += -w * 0.4 * arms_fwd
    e[:, L_SH, 0] += -w * arms_fwd
    e[:, R_SH, 0] += -w * arms_fwd
    m.height = _leg_drop(hip * w - lean * w, knee * w)
    return m


def _squat(t, rng):
    return _crouch(t, rng, "squat")


def _sit(t, rng):
    return _crouch(t, rng, "sit")


def _jump(t, rng):
    """Repeated jumps: crouch, push off with an arm swing, flight (ballistic), land, recover."""
    m = _standing(t, rng)
    e = m.euler
    dur = t[-1] + 1.0 / FPS
    g = 9.81
    period = rng.uniform(2.2, 3.2)
    n = max(1, int(dur // period))
    height = np.zeros_like(t)
    crouch = np.zeros_like(t)
    tuck = np.zeros_like(t)
    fwd = np.zeros_like(t)
    for k in range(n):
        t0 = dur * k / n + rng.uniform(0.1, 0.4)
        prep, v0 = rng.uniform(0.6, 0.8), rng.uniform(1.6, 2.4)  # take-off speed (m/s)
        flight = 2 * v0 / g
        t_off = t0 + prep
        c = _pulse(t, t0, prep * 0.6, 0.0, prep * 0.4) + _pulse(t, t_off + flight - 0.1, 0.25, 0.05, 0.5)
        crouch = np.maximum(crouch, np.clip(c, 0, 1))
        x = t - t_off
        air = (x > 0) & (x < flight)
        height += np.where(air, v0 * x - 0.5 * g * x**2, 0.0)
        tuck = np.maximum(tuck, np.sin(np.pi * np.clip(x / flight, 0, 1)) * air)
        fwd += rng.uniform(0.0, 1.2) * air  # optional forward travel during flight
        arm = _pulse(t, t_off - 0.25, 0.25, flight * 0.5, 0.6)
        e[:, L_SH, 0] += -arm * 1.9  # arms swing forward-up (sagittal plane) at take-off
        e[:, R_SH, 0] += -arm * 1.9
    hip, knee = 1.0 * crouch + 0.4 * tuck, 1.5 * crouch + 0.7 * tuck
    for h, kn, a in ((L_HIP, L_KNEE, L_ANKLE), (R_HIP, R_KNEE, R_ANKLE)):
        e[:, h, 0] += -hip
        e[:, kn, 0] += knee
        e[:, a, 0] += -0.4 * crouch + 0.5 * tuck
    e[:, 0, 0] += 0.3 * crouch
    # smooth the ballistic height so touchdown (velocity jump) is not a pop: 3-frame moving average
    h = height + _leg_drop(hip - 0.3 * crouch, knee)
    kernel = np.ones(5) / 5
    h = np.convolve(np.pad(h, 2, mode="edge"), kernel, mode="valid")
    m.height = h
    m.speed = np.convolve(np.pad(fwd, 4, mode="edge"), np.ones(9) / 9, mode="valid")
    return m


_BUILDERS = {
    "walk": _walk, "run": _run, "turn": _turn, "reach": _reach, "wave": _wave, "squat": _squat, "sit": _sit,
    "jump": _jump,
}  # fmt: skip


def _soft_clip(x: np.ndarray, lo: np.ndarray, hi: np.ndarray, margin: float = 0.15) -> np.ndarray:
    """Identity well inside [lo, hi]; saturates smoothly (tanh) in the last ``margin`` fraction."""
    mid, half = (lo + hi) / 2, np.maximum((hi - lo) / 2, 1e-9)
    u = (x - mid) / half
    knee = 1 - margin
    over = np.abs(u) > knee
    sat = np.sign(u) * (knee + margin * np.tanh((np.abs(u) - knee) / margin))
    return mid + half * np.where(over, sat, u)


def euler_to_rotmat(euler: np.ndarray) -> torch.Tensor:
    """(...,24,3) per-joint Euler angles (x, y, z) rad -> (...,24,3,3) rotation matrices (float64), with the
    per-joint order described at :data:`_YXZ_JOINTS`."""
    a = torch.as_tensor(np.asarray(euler, np.float64))
    R = roma.euler_to_rotmat("XYZ", a.reshape(-1, 3)).reshape(*a.shape[:-1], 3, 3)
    idx = list(_YXZ_JOINTS)
    yxz = a[..., idx, :][..., [1, 0, 2]]
    R[..., idx, :, :] = roma.euler_to_rotmat("YXZ", yxz.reshape(-1, 3)).reshape(*yxz.shape[:-1], 3, 3)
    return R


def rotmat_to_joint_euler(R: torch.Tensor) -> np.ndarray:
    """Inverse of :func:`euler_to_rotmat`: (...,24,3,3) -> (...,24,3) (x, y, z) rad."""
    e = roma.rotmat_to_euler("XYZ", R.reshape(-1, 3, 3)).reshape(*R.shape[:-2], 3)
    idx = list(_YXZ_JOINTS)
    yxz = roma.rotmat_to_euler("YXZ", R[..., idx, :, :].reshape(-1, 3, 3)).reshape(*R.shape[:-3], len(idx), 3)
    e[..., idx, :] = yxz[..., [1, 0, 2]]
    return e.numpy()


def sample_betas(rng: np.random.Generator, scale: float = 0.8, clip: float = 2.5) -> np.ndarray:
    """Random body shape: (10,) betas ~ N(0, scale^2), clipped to +/- clip."""
    return np.clip(rng.normal(0.0, scale, 10), -clip, clip).astype(np.float32)


def generate_clip(
    kind: str,
    n_frames: int = 300,
    seed: int = 0,
    *,
    fps: float = FPS,
    betas: np.ndarray | None = None,
    blend_of: tuple[str, str] | None = None,
) -> dict:
    """One procedural clip.

    Args:
        kind: one of :data:`KINDS`; ``"blend"`` crossfades (1 s) between two base kinds (``blend_of``, or
            two drawn from the seed) at a random time.
        n_frames: T frames (>= 2); fps: frame rate (30 by default).
        seed: the clip is a deterministic function of (kind, n_frames, seed, fps, betas, blend_of).
        betas: (10,) body shape, else drawn with :func:`sample_betas`.

    Returns dict: ``global_orient`` (T,3) axis-angle (world, Y up), ``body_pose`` (T,69) axis-angle,
    ``betas`` (10,), ``transl`` (T,3) metres (y = vertical offset from standing), ``fps`` float,
    ``kind`` str (``"blend:walk>run"`` for blends); all float32.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if n_frames < 2:
        raise ValueError(f"n_frames must be >= 2, got {n_frames}")
    ss = np.random.SeedSequence([seed, KINDS.index(kind), n_frames])
    rng = np.random.default_rng(ss)
    t = np.arange(n_frames) / fps
    name = kind
    if kind == "blend":
        a, b = blend_of if blend_of is not None else tuple(rng.choice(BASE_KINDS, 2, replace=False))
        if a not in BASE_KINDS or b not in BASE_KINDS:
            raise ValueError(f"blend_of must name two of {BASE_KINDS}, got {blend_of!r}")
        ma, mb = _BUILDERS[a](t, rng), _BUILDERS[b](t, rng)
        dur = t[-1]
        w = _ramp(t, rng.uniform(0.3, 0.6) * dur, min(1.0, 0.3 * dur))
        m = ma.blend(mb, w)
        name = f"blend:{a}>{b}"
    else:
        m = _BUILDERS[kind](t, rng)
    if betas is None:
        betas = sample_betas(rng)
    betas = np.asarray(betas, np.float32).reshape(10)

    euler = _soft_clip(m.euler, JOINT_LIMITS[None, :, :, 0], JOINT_LIMITS[None, :, :, 1])
    # heading: integrate the yaw rate; start so that the whole clip stays inside (-pi, pi)
    yaw = np.cumsum(m.yaw_rate) / fps
    yaw = yaw - yaw[0]
    lo, hi = yaw.min(), yaw.max()
    span = hi - lo
    if span > 2 * np.pi - 0.4:
        raise RuntimeError("heading range too large for a wrap-free axis-angle")
    room = (2 * np.pi - 0.4) - span
    yaw0 = -np.pi + 0.2 - lo + rng.uniform(0, room)
    yaw = yaw + yaw0
    # translation: forward along the heading (+Z rotated by yaw about Y), sideways, vertical offset
    fwd = np.stack([np.sin(yaw), np.zeros_like(yaw), np.cos(yaw)], 1)
    left = np.stack([np.cos(yaw), np.zeros_like(yaw), -np.sin(yaw)], 1)
    vel = fwd * m.speed[:, None] + left * m.side[:, None]
    transl = np.cumsum(vel, 0) / fps
    transl = transl - transl[0]
    transl[:, 1] = m.height

    R = euler_to_rotmat(euler)
    Ryaw = roma.rotvec_to_rotmat(torch.as_tensor(np.stack([0 * yaw, yaw, 0 * yaw], 1)))
    R_glob = Ryaw @ R[:, 0]
    global_orient = roma.rotmat_to_rotvec(R_glob).numpy()
    body_pose = roma.rotmat_to_rotvec(R[:, 1:]).reshape(n_frames, 69).numpy()
    return {
        "global_orient": global_orient.astype(np.float32),
        "body_pose": body_pose.astype(np.float32),
        "betas": betas,
        "transl": transl.astype(np.float32),
        "fps": float(fps),
        "kind": name,
    }


def generate_dataset(
    n_clips: int, n_frames: int = 300, seed: int = 0, kinds: tuple[str, ...] = KINDS
) -> list[dict]:
    """``n_clips`` clips cycling through ``kinds`` (in order), clip i seeded by (seed, i)."""
    from tqdm.auto import tqdm

    out = []
    for i in tqdm(range(n_clips), desc="motion clips", disable=n_clips < 50):
        kind = kinds[i % len(kinds)]
        out.append(
            generate_clip(kind, n_frames, seed=int(np.random.SeedSequence([seed, i]).generate_state(1)[0]))
        )
    return out


def joint_euler(body_pose: np.ndarray) -> np.ndarray:
    """(T,69) axis-angle -> (T,23,3) per-joint Euler angles (rad) of joints 1..23 in this module's convention
    (for checks against ``JOINT_LIMITS[1:]``)."""
    rv = torch.as_tensor(np.asarray(body_pose, np.float64)).reshape(-1, 23, 3)
    R = torch.cat([torch.eye(3, dtype=rv.dtype).expand(rv.shape[0], 1, 3, 3), roma.rotvec_to_rotmat(rv)], 1)
    return rotmat_to_joint_euler(R)[:, 1:]


def angular_speed_accel(clip: dict) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame joint angular speed (T-1, 24) and acceleration (T-2, 24) in rad/s and rad/s^2 (geodesic,
    global orientation first)."""
    fps = clip["fps"]
    rv = np.concatenate([clip["global_orient"][:, None], clip["body_pose"].reshape(-1, 23, 3)], 1)
    R = roma.rotvec_to_rotmat(torch.as_tensor(rv, dtype=torch.float64))
    rel = R[1:] @ R[:-1].transpose(-1, -2)
    w = roma.rotmat_to_rotvec(rel)  # (T-1,24,3) rotation per frame in the world-ish frame
    speed = w.norm(dim=-1).numpy() * fps
    acc = (w[1:] - w[:-1]).norm(dim=-1).numpy() * fps * fps
    return speed, acc


def floor_height(body, betas: np.ndarray) -> float:
    """Lowest vertex height (m) of the body with ``betas`` (10,) in a relaxed standing pose (identity global
    orientation, zero translation); ``body`` is a :class:`fasthmr_lib.body.smpl.SMPLBody`."""
    rng = np.random.default_rng(0)
    stand = _standing(np.zeros(1), rng).euler
    R = euler_to_rotmat(stand[0]).float()
    with torch.no_grad():
        out = body(R[None, :1], R[None, 1:], torch.as_tensor(betas, dtype=torch.float32).reshape(1, 10))
    return float(out["vertices"][0, :, 1].min())
