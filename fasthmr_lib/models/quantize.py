"""Dynamic int8 quantisation of the ViT backbone's linear layers, for CPU inference.

The backbone's ``nn.Linear`` layers (attention qkv / proj, MLP fc1 / fc2: ~98 % of its MACs) keep int8
weights quantised per output channel; activations are quantised per batch at run time and products
accumulate in int32 (PyTorch dynamic quantisation, the fbgemm / x86 kernels). Attention matrix products,
norms and the SMPL head stay in float32. Inference only; the model is copied (its module objects; a CPU
model's weight tensors are shared and only read), never changed in place.

``torch.ao.quantization.quantize_dynamic`` is deprecated in favour of torchao; it is what torch 2.14 ships
and it runs on every x86 CPU, so it is used here with its deprecation warnings silenced.
"""

from __future__ import annotations

import copy
import warnings

from torch import nn

QUANTIZED_PARTS = ("backbone",)
#: which linear layers of the quantised parts get int8: every one, or only the MLPs (fc1 / fc2: 2/3 of a
#: ViT block's MACs, leaving attention's qkv / proj in float32)
LAYER_SETS = ("all", "mlp")
#: the set ``FastHMR(int8=True)`` and the bench's ``fasthmr_cpu`` use: on the shipped ``small`` (default
#: test split, ECLM + Mask-ToMe) MLP-only int8 moves MPJPE by +0.4 mm (head) / −1.1 mm (decoder), all
#: linears by −0.4 / +2.1 mm (README "CPU inference")
CPU_LAYERS = "mlp"


def _selected_linears(part: nn.Module, layers: str) -> list[str]:
    names = [n for n, m in part.named_modules() if isinstance(m, nn.Linear)]
    return names if layers == "all" else [n for n in names if ".mlp." in f".{n}."]


def quantize_int8(
    model: nn.Module, parts: tuple[str, ...] = QUANTIZED_PARTS, layers: str = CPU_LAYERS
) -> nn.Module:
    """A copy of ``model`` (an :class:`~fasthmr_lib.models.hmr.HMR`, possibly merged / patched) whose
    submodules named in ``parts`` have their ``nn.Linear`` layers (``layers``: "all" or "mlp") replaced by
    dynamic int8 ones. The copy is in eval mode on the CPU (the int8 kernels are CPU kernels)."""
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    if layers not in LAYER_SETS:
        raise ValueError(f"quantize_int8: layers must be one of {LAYER_SETS}, got {layers!r}")
    missing = [p for p in parts if not isinstance(getattr(model, p, None), nn.Module)]
    if missing:
        raise ValueError(f"quantize_int8: the model has no submodule {missing} (parts={parts})")
    out = _structural_copy(model).cpu().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        for p in parts:
            part = getattr(out, p)
            spec = {n: per_channel_dynamic_qconfig for n in _selected_linears(part, layers)}
            # in place on the copy's own modules: quantize_dynamic would deep-copy the part once more
            quantize_dynamic(part, spec, inplace=True)
    out.int8_parts = tuple(parts)
    out.int8_layers = layers
    return out


def on_cpu(module: nn.Module) -> bool:
    """Whether every parameter and buffer of ``module`` is on the CPU."""
    return all(t.device.type == "cpu" for t in (*module.parameters(), *module.buffers()))


def _structural_copy(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with its own module objects but sharing every parameter and buffer tensor of a
    CPU model (a deep copy of ViT-H's weights took ~3 s and 2.7 GB per int8 configuration). Quantising
    the copy swaps modules inside it and reads the float weights, so ``model`` is left as it was."""
    if not on_cpu(model):
        return copy.deepcopy(model)
    memo = {id(t): t for t in (*model.parameters(), *model.buffers())}
    return copy.deepcopy(model, memo)


def is_int8(model: nn.Module) -> bool:
    """Whether :func:`quantize_int8` made ``model``."""
    return bool(getattr(model, "int8_parts", ()))
