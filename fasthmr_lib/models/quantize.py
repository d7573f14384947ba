"""Dynamic int8 quantisation of the ViT backbone's linear layers, for CPU inference.

The backbone's ``nn.Linear`` layers (attention qkv / proj, MLP fc1 / fc2: ~98 % of its MACs) keep int8
weights quantised per output channel; activations are quantised per batch at run time and products
accumulate in int32 (PyTorch dynamic quantisation, the fbgemm / x86 kernels). Attention matrix products,
norms and the SMPL head stay in float32. Inference only; the model is copied, never changed in place.

``torch.ao.quantization.quantize_dynamic`` is deprecated in favour of torchao; it is what torch 2.14 ships
and it runs on every x86 CPU, so it is used here with its deprecation warnings silenced.
"""

from __future__ import annotations

import copy
import warnings

from torch import nn

QUANTIZED_PARTS = ("backbone",)


def quantize_int8(model: nn.Module, parts: tuple[str, ...] = QUANTIZED_PARTS) -> nn.Module:
    """A copy of ``model`` (an :class:`~fasthmr_lib.models.hmr.HMR`, possibly merged / patched) whose
    submodules named in ``parts`` have their ``nn.Linear`` layers replaced by dynamic int8 ones. The copy
    is in eval mode on the CPU (the int8 kernels are CPU kernels)."""
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    missing = [p for p in parts if not isinstance(getattr(model, p, None), nn.Module)]
    if missing:
        raise ValueError(f"quantize_int8: the model has no submodule {missing} (parts={parts})")
    out = copy.deepcopy(model).cpu().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        for p in parts:
            setattr(out, p, quantize_dynamic(getattr(out, p), {nn.Linear: per_channel_dynamic_qconfig}))
    out.int8_parts = tuple(parts)
    return out


def is_int8(model: nn.Module) -> bool:
    """Whether :func:`quantize_int8` made ``model``."""
    return bool(getattr(model, "int8_parts", ()))
