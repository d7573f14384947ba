"""Model configurations as dataclasses, with named presets.

Presets
-------
``hmr2``       the exact HMR2.0 (4D-Humans) architecture: ViTPose-H backbone (32 blocks, 1280-d,
               16 heads, 192 tokens) + SMPL transformer-decoder head (6 layers, 1024-d).
``camerahmr``  the same ViT-H; the head's query token is conditioned on CLIFF-style box info.
``small``      the same code, narrower and shallower (12 blocks), still 192 tokens; trained on CPU.
``tiny``       a few blocks, for tests and the CI profile.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ViTConfig:
    """ViTPose-style backbone (HMR2.0 ``hmr2/models/backbones/vit.py``)."""

    img_size: tuple[int, int] = (256, 192)  # (H, W) after the 32-px side trim of a 256x256 crop
    patch_size: int = 16
    patch_padding: int = 2  # HMR2.0: 4 + 2 * (ratio // 2 - 1) with ratio = 1
    embed_dim: int = 1280
    depth: int = 32
    num_heads: int = 16
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    drop_path_rate: float = 0.55
    norm_eps: float = 1e-6
    # "patch": HMR2.0's single strided patch convolution. "conv": a stack of stride-2 3x3 convolutions
    # down to the same token grid (Xiao et al., "Early convolutions help transformers see better",
    # NeurIPS 2021), for training from scratch; needs patch_size a power of 2.
    stem: str = "patch"

    def __post_init__(self) -> None:
        if self.stem not in ("patch", "conv"):
            raise ValueError(f"ViTConfig.stem must be 'patch' or 'conv', got {self.stem!r}")
        if self.stem == "conv" and (self.patch_size < 2 or self.patch_size & (self.patch_size - 1)):
            raise ValueError(f"ViTConfig.stem='conv' needs a power-of-2 patch_size, got {self.patch_size}")

    @property
    def grid(self) -> tuple[int, int]:
        """Token grid (rows, cols): (16, 12) for 256x192 with either stem."""
        h, w = self.img_size
        s = self.patch_size
        if self.stem == "conv":  # each 3x3 stride-2 conv with padding 1 maps n -> ceil(n / 2): ceil(n / s)
            return (-(-h // s), -(-w // s))
        p = self.patch_padding
        return ((h + 2 * p - s) // s + 1, (w + 2 * p - s) // s + 1)

    @property
    def num_tokens(self) -> int:
        r, c = self.grid
        return r * c


@dataclass(frozen=True)
class HeadConfig:
    """SMPL transformer-decoder head (HMR2.0 ``SMPLTransformerDecoderHead``)."""

    dim: int = 1024  # query-token width; the head token handed to the diffusion decoder has this size
    depth: int = 6
    heads: int = 8
    dim_head: int = 64
    mlp_dim: int = 1024
    context_dim: int = 1280
    num_joints: int = 24  # 6D rotation per joint -> 144 pose numbers
    num_betas: int = 10
    token_input: str = "zero"  # "zero" (HMR2.0) or "bbox" (CameraHMR: CLIFF box info, 3 numbers)
    # CameraHMR also reads 44 2D keypoints out of the head token (``deckp``: Linear(dim, 88)); 0 = none.
    kp_readout: int = 0


@dataclass(frozen=True)
class ModelConfig:
    """A whole HMR model: backbone + head + camera conventions."""

    name: str
    vit: ViTConfig = field(default_factory=ViTConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    image_size: int = 256  # square crop side in pixels
    focal_length: float = 5000.0  # pixels at image_size (HMR2.0 EXTRA.FOCAL_LENGTH)
    pelvis_index: int = 39  # in the 44-joint HMR2.0 layout

    def replace(self, **kw) -> ModelConfig:
        return dataclasses.replace(self, **kw)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @staticmethod
    def from_dict(d: dict) -> ModelConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise ``ValueError`` naming them."""
        d = dict(d)
        vit = d.pop("vit", {})
        head = d.pop("head", {})
        for cls, sub, key in ((ViTConfig, vit, "vit"), (HeadConfig, head, "head")):
            known = {f.name for f in dataclasses.fields(cls)}
            bad = set(sub) - known
            if bad:
                raise ValueError(f"model config section '{key}' has unknown keys {sorted(bad)}")
        if "img_size" in vit:
            vit["img_size"] = tuple(vit["img_size"])
        known = {f.name for f in dataclasses.fields(ModelConfig)}
        bad = set(d) - known
        if bad:
            raise ValueError(f"model config has unknown keys {sorted(bad)}")
        return ModelConfig(vit=ViTConfig(**vit), head=HeadConfig(**head), **d)


PRESETS: dict[str, ModelConfig] = {
    "hmr2": ModelConfig(name="hmr2"),
    "camerahmr": ModelConfig(name="camerahmr", head=HeadConfig(token_input="bbox", kp_readout=88)),
    "small": ModelConfig(
        name="small",
        vit=ViTConfig(embed_dim=256, depth=12, num_heads=4, drop_path_rate=0.1),
        head=HeadConfig(dim=256, depth=2, heads=4, dim_head=64, mlp_dim=512, context_dim=256),
    ),
    "tiny": ModelConfig(
        name="tiny",
        vit=ViTConfig(embed_dim=64, depth=4, num_heads=2, drop_path_rate=0.0),
        head=HeadConfig(dim=64, depth=1, heads=2, dim_head=32, mlp_dim=128, context_dim=64),
    ),
}


def get_preset(name: str, **overrides) -> ModelConfig:
    """Return a named preset (``hmr2``, ``camerahmr``, ``small``, ``tiny``), optionally with
    top-level fields replaced. Unknown names raise ``KeyError`` listing the valid ones."""
    if name not in PRESETS:
        raise KeyError(f"unknown model preset {name!r}; expected one of {sorted(PRESETS)}")
    cfg = PRESETS[name]
    return cfg.replace(**overrides) if overrides else cfg
