"""CameraHMR's HumanFoV focal-length network (``core/cam_model/fl_net.py`` ``FLNet``), our own code.

Architecture (read from CameraHMR for its facts; written here with plain torch blocks):

* backbone: HRNet (``core/cam_model/backbone/hrnet.py``, ``hrnet_w48(downsample=True, use_conv=True)``):
  stem (two stride-2 3x3 convs, 64 ch) -> ``layer1`` (4 bottlenecks, 256 ch) -> stages 2/3/4 with
  2/3/4 branches of widths w, 2w, 4w, 8w (1/4/3 modules of 4 basic blocks per branch, summed fusion)
  -> the branches 0/1/2 are brought to branch 3's resolution by 3/2/1 strided conv+BN+ReLU layers
  (``downsample_stage_{1,2,3}``) and concatenated: 15 w channels (720 for w = 48), 8x8 for a 256 input.
  ``final_layer`` (a 1x1 conv to 24 heat maps) is in the checkpoint but unused.
* head: global average pool -> ``fc1`` (15 w -> 1024) -> dropout -> ``fc3`` (1024 -> 2). ``fc2`` exists
  in the checkpoint but FLNet's forward skips it (and there is no activation between fc1 and fc3); we
  do the same.
* output: (hfov, vfov) in radians; CameraHMR uses only the vertical one:
  ``f = H / (2 tan(vfov / 2))`` px for an H-pixel-high image (``mesh_estimator.get_cam_intrinsics``).
* input: the whole image resized with its aspect kept so that its longer side is 256 (``cv2.INTER_AREA``),
  pasted centred on a white 256x256 canvas, RGB, ImageNet-normalised (``resize_image``).

Checkpoint: ``data/pretrained-models/cam_model_cleaned.ckpt``, a dict whose ``state_dict`` holds exactly
FLNet's keys (``backbone.*`` incl. BatchNorm ``running_*`` / ``num_batches_tracked``, ``fc1/2/3.*``);
CameraHMR loads it with ``load_state_dict(strict=True)``. :func:`load_humanfov` checks the keys the same
way (a leading ``model.`` is stripped, as CameraHMR's ``load_valid`` does; ``cam_model.*`` keys of a
CameraHMR training checkpoint are read on their own).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import Tensor, nn

from ..data.crops import normalize_image
from ..paths import humanfov_checkpoint
from .camera import image_diagonal_focal
from .checkpoints import CheckpointError, _torch_load, load_state_strict

INPUT_SIZE = 256
HEAD_WIDTH = 1024
_STAGES = ((1, 2), (4, 3), (3, 4))  # (modules, branches) of stages 2, 3, 4


def _conv_bn(cin: int, cout: int, k: int, stride: int, relu: bool) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout)]
    return layers + [nn.ReLU(inplace=True)] if relu else layers


class _Basic(nn.Module):
    """HRNet basic block (two 3x3 convs, identity shortcut)."""

    def __init__(self, ch: int):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(ch, ch, 3, 1, 1, bias=False), nn.BatchNorm2d(ch)
        self.conv2, self.bn2 = nn.Conv2d(ch, ch, 3, 1, 1, bias=False), nn.BatchNorm2d(ch)

    def forward(self, x: Tensor) -> Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(y)) + x)


class _Bottleneck(nn.Module):
    """HRNet bottleneck (1x1, 3x3, 1x1 x4), projection shortcut when the width changes."""

    def __init__(self, cin: int, planes: int):
        super().__init__()
        cout = planes * 4
        self.conv1, self.bn1 = nn.Conv2d(cin, planes, 1, bias=False), nn.BatchNorm2d(planes)
        self.conv2, self.bn2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False), nn.BatchNorm2d(planes)
        self.conv3, self.bn3 = nn.Conv2d(planes, cout, 1, bias=False), nn.BatchNorm2d(cout)
        self.downsample = None
        if cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: Tensor) -> Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        y = torch.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return torch.relu(y + (x if self.downsample is None else self.downsample(x)))


def _fuse(i: int, j: int, chs: list[int]) -> nn.Module | None:
    """Branch j -> branch i's resolution and width (HRNet ``_make_fuse_layers``)."""
    if j == i:
        return None
    if j > i:
        conv = nn.Conv2d(chs[j], chs[i], 1, 1, 0, bias=False)
        return nn.Sequential(conv, nn.BatchNorm2d(chs[i]), nn.Upsample(scale_factor=2 ** (j - i)))
    steps = [
        nn.Sequential(*_conv_bn(chs[j], chs[i] if k == i - j - 1 else chs[j], 3, 2, k != i - j - 1))
        for k in range(i - j)
    ]
    return nn.Sequential(*steps)


class _HRModule(nn.Module):
    """One HRNet module: 4 basic blocks per branch, then every branch receives the sum of all."""

    def __init__(self, chs: list[int]):
        super().__init__()
        n = len(chs)
        self.branches = nn.ModuleList(nn.Sequential(*(_Basic(c) for _ in range(4))) for c in chs)
        self.fuse_layers = nn.ModuleList(nn.ModuleList(_fuse(i, j, chs) for j in range(n)) for i in range(n))

    def forward(self, xs: list[Tensor]) -> list[Tensor]:
        xs = [b(x) for b, x in zip(self.branches, xs, strict=True)]
        out = []
        for i, fl in enumerate(self.fuse_layers):
            y = xs[0] if i == 0 else fl[0](xs[0])
            for j in range(1, len(xs)):
                y = y + (xs[j] if i == j else fl[j](xs[j]))
            out.append(torch.relu(y))
        return out


def _transition(pre: list[int], cur: list[int]) -> nn.ModuleList:
    """HRNet ``_make_transition_layer``: re-width kept branches, add a new stride-2 branch."""
    layers: list[nn.Module | None] = []
    for i, c in enumerate(cur):
        if i < len(pre):
            layers.append(None if c == pre[i] else nn.Sequential(*_conv_bn(pre[i], c, 3, 1, True)))
        else:
            steps = [
                nn.Sequential(*_conv_bn(pre[-1], c if k == i - len(pre) else pre[-1], 3, 2, True))
                for k in range(i + 1 - len(pre))
            ]
            layers.append(nn.Sequential(*steps))
    return nn.ModuleList(layers)


class HRNetDown(nn.Module):
    """HRNet-W``width`` whose four branches are downsampled by strided convs to the lowest resolution and
    concatenated: (B, 3, H, W) -> (B, 15 width, H/32, W/32)."""

    def __init__(self, width: int = 48, num_joints: int = 24):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 64, 3, 2, 1, bias=False), nn.BatchNorm2d(64)
        self.conv2, self.bn2 = nn.Conv2d(64, 64, 3, 2, 1, bias=False), nn.BatchNorm2d(64)
        self.layer1 = nn.Sequential(_Bottleneck(64, 64), *(_Bottleneck(256, 64) for _ in range(3)))
        pre = [256]
        for s, (modules, branches) in enumerate(_STAGES, start=2):
            chs = [width * 2**b for b in range(branches)]
            setattr(self, f"transition{s - 1}", _transition(pre, chs))
            setattr(self, f"stage{s}", nn.Sequential(*(_HRModule(chs) for _ in range(modules))))
            pre = chs
        self.final_layer = nn.Conv2d(width, num_joints, 1)  # in the checkpoint; FLNet never uses it
        for k, ch in ((1, width), (2, 2 * width), (3, 4 * width)):
            layers = [m for _ in range(4 - k) for m in _conv_bn(ch, ch, 3, 2, True)]
            setattr(self, f"downsample_stage_{k}", nn.Sequential(*layers))

    def forward(self, x: Tensor) -> Tensor:
        x = torch.relu(self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))))
        xs = [self.layer1(x)]
        for s in (2, 3, 4):
            trans = getattr(self, f"transition{s - 1}")
            xs = [xs[i] if t is None else t(xs[min(i, len(xs) - 1)]) for i, t in enumerate(trans)]
            xs = getattr(self, f"stage{s}")(xs)
        down = [getattr(self, f"downsample_stage_{k}")(xs[k - 1]) for k in (1, 2, 3)]
        return torch.cat([*down, xs[3]], 1)


class HumanFoV(nn.Module):
    """CameraHMR's FLNet: image (B, 3, 256, 256) ImageNet-normalised -> (B, 2) (hfov, vfov) radians."""

    def __init__(self, width: int = 48):
        super().__init__()
        self.width = int(width)
        self.backbone = HRNetDown(width)
        feat = 15 * self.width
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Linear(feat, HEAD_WIDTH)
        self.drop1 = nn.Dropout()
        self.fc2 = nn.Linear(HEAD_WIDTH, HEAD_WIDTH)  # in the checkpoint; FLNet's forward skips it
        self.drop2 = nn.Dropout()
        self.fc3 = nn.Linear(HEAD_WIDTH, 2)

    def forward(self, images: Tensor) -> Tensor:
        xf = self.avgpool(self.backbone(images)).flatten(1)
        return self.fc3(self.drop2(self.fc1(xf)))


def preprocess_image(img: np.ndarray, size: int = INPUT_SIZE) -> Tensor:
    """CameraHMR ``resize_image`` + normalisation: (H, W, 3) uint8 RGB -> (3, size, size) float32: the
    image scaled (``cv2.INTER_AREA``) so its longer side is ``size`` (the other ``int(size / aspect)``
    or ``int(size * aspect)``), pasted centred on a white canvas, ImageNet-normalised."""
    img = np.asarray(img)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"HumanFoV input must be an (H, W, 3) RGB image, got shape {img.shape}")
    h, w = img.shape[:2]
    aspect = w / h
    nw, nh = (size, int(size / aspect)) if aspect > 1 else (int(size * aspect), size)
    canvas = np.full((size, size, 3), 255, np.uint8)
    x0, y0 = (size - nw) // 2, (size - nh) // 2
    canvas[y0 : y0 + nh, x0 : x0 + nw] = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA)
    return normalize_image(canvas)


def focal_from_vfov(vfov: Tensor, img_h: float | Tensor) -> Tensor:
    """Vertical field of view (radians) -> focal length px for an ``img_h``-pixel-high image."""
    return img_h / (2 * torch.tan(vfov / 2))


@torch.no_grad()
def estimate_focal(model: HumanFoV, images: list[np.ndarray], batch_size: int = 16) -> np.ndarray:
    """Focal length (px) of each (H, W, 3) uint8 RGB image from HumanFoV's vertical FoV -> (N,) float64."""
    dev = next(model.parameters()).device
    out = []
    for a in range(0, len(images), batch_size):
        chunk = images[a : a + batch_size]
        x = torch.stack([preprocess_image(im) for im in chunk]).to(dev)
        vfov = model.eval()(x)[:, 1].double().cpu()
        h = torch.tensor([float(np.asarray(im).shape[0]) for im in chunk], dtype=torch.float64)
        out.append(focal_from_vfov(vfov, h).numpy())
    return np.concatenate(out) if out else np.zeros(0)


def load_humanfov(path: str | os.PathLike, *, width: int | None = None) -> HumanFoV:
    """Load CameraHMR's HumanFoV checkpoint (``cam_model_cleaned.ckpt``: a dict with ``state_dict`` of
    FLNet's keys) into :class:`HumanFoV` (eval mode). Every key must match in name and shape (CameraHMR
    loads it strictly too); any difference raises :class:`CheckpointError` naming the file. A CameraHMR
    training checkpoint whose ``state_dict`` holds the network under ``cam_model.*`` (CameraHMR's trainer
    keeps FLNet as ``self.cam_model``) is read from those keys alone. ``width``:
    the HRNet width (default: read from ``backbone.transition1.0.0.weight``; 48 in the release)."""
    path = Path(path)
    what = "a CameraHMR HumanFoV (cam_model) checkpoint"
    raw = _torch_load(path, what)
    sd = raw.get("state_dict", raw) if isinstance(raw, dict) else None
    if not isinstance(sd, dict) or not all(isinstance(v, Tensor) for v in sd.values()):
        raise CheckpointError(f"{path}: expected {what}: a dict with a 'state_dict' of tensors")
    if any(k.startswith("cam_model.") for k in sd):  # a CameraHMR training checkpoint holds FLNet here
        sd = {k[len("cam_model.") :]: v for k, v in sd.items() if k.startswith("cam_model.")}
    sd = {(k[6:] if k.startswith("model.") else k): v for k, v in sd.items()}
    if not any(k.startswith("backbone.") for k in sd) or "fc3.weight" not in sd:
        found = sorted({k.split(".")[0] for k in sd})
        raise CheckpointError(
            f"{path}: not {what} (expected keys 'backbone.*' and 'fc1/fc2/fc3.*', found prefixes {found})"
        )
    if width is None:  # the release is HRNet-W48; a made file may be narrower
        t = sd.get("backbone.transition1.0.0.weight")
        width = int(t.shape[0]) if t is not None and t.ndim == 4 else 48
    model = HumanFoV(width)
    load_state_strict(model, sd, path, what)
    return model.eval()


def focal_lengths(
    images: Sequence[np.ndarray],
    *,
    focal_px: float | None = None,
    humanfov: HumanFoV | str | os.PathLike | None = None,
    batch: int = 16,
) -> tuple[np.ndarray, str]:
    """The full-image focal length (px) of each (H, W, 3) image and where it came from (one of
    :data:`fasthmr_lib.models.camera.FOCAL_SOURCES`), first that applies:

    ``given``: ``focal_px`` for every image; ``humanfov``: :func:`estimate_focal` with ``humanfov`` (a
    model or a checkpoint for :func:`load_humanfov`; ``None`` -> ``$FASTHMR_HUMANFOV`` when set);
    ``image_diagonal``: ``sqrt(H^2 + W^2)`` (:func:`fasthmr_lib.models.camera.image_diagonal_focal`).
    Returns ((N,) float64, source)."""
    n = len(images)
    if focal_px is not None:
        if not float(focal_px) > 0:
            raise ValueError(f"focal_px must be > 0 px, got {focal_px}")
        return np.full(n, float(focal_px)), "given"
    if humanfov is None:
        humanfov = humanfov_checkpoint()
    if humanfov is not None:
        model = humanfov if isinstance(humanfov, HumanFoV) else load_humanfov(humanfov)
        return estimate_focal(model, [np.asarray(im) for im in images], batch), "humanfov"
    return np.array([image_diagonal_focal(np.asarray(im).shape[:2]) for im in images]), "image_diagonal"
