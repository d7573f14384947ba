"""Which way a body faces the camera, from its camera-frame global orientation (pure tensor functions).

SMPL bodies face +z in the rest pose; the camera is OpenCV's (x right, y down, z away from the camera).
"""

from __future__ import annotations

import roma
import torch
from torch import Tensor


def yaw_of(rotmat: Tensor) -> Tensor:
    """(..., 3, 3) global rotation (body -> camera) -> (...,) yaw of the body's forward axis about the
    camera's vertical, radians in (-pi, pi]: 0 = facing away from the camera, +-pi = facing it."""
    fwd = rotmat[..., :, 2]
    return torch.atan2(fwd[..., 0], fwd[..., 2])


def facing_cos(global_orient: Tensor) -> Tensor:
    """cos of the angle between the body's forward axis and the direction towards the camera, in the
    camera's ground plane: 1 = facing the camera, -1 = seen from behind, 0 = side-on.
    global_orient (N, 3) camera-frame axis-angle -> (N,)."""
    return -torch.cos(yaw_of(roma.rotvec_to_rotmat(global_orient.float())))


def facing_deg_of(rotmat: Tensor) -> Tensor:
    """Signed facing angle (...,) in degrees, [-180, 180): 0 = facing the camera, +-180 = seen from
    behind. rotmat (..., 3, 3) camera-frame global rotation (body -> camera)."""
    return torch.rad2deg(torch.remainder(yaw_of(rotmat), 2 * torch.pi) - torch.pi)


def seen_from_behind(global_orient: Tensor) -> Tensor:
    """(N,) bool: the body faces away from the camera (|facing angle| >= 90°), the bit that tells front from
    back. global_orient (N, 3) camera-frame axis-angle."""
    return facing_angle_deg(global_orient).abs() >= 90


def facing_angle_deg(global_orient: Tensor) -> Tensor:
    """Signed facing angle (N,) in degrees, [-180, 180): 0 = facing the camera, +-180 = seen from behind.
    global_orient (N, 3) camera-frame axis-angle."""
    return facing_deg_of(roma.rotvec_to_rotmat(global_orient.float()))
