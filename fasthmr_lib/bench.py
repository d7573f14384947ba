"""Command line for the paper's cost numbers: params, MACs (two conventions), throughput.

Examples::

    python -m fasthmr_lib.bench --preset hmr2 --no-time                 # counts only (meta device)
    python -m fasthmr_lib.bench --preset hmr2 --batch 1 8               # + CPU throughput
    python -m fasthmr_lib.bench --preset hmr2 --depth 28 --mask-tome 3,40,90 --no-time --json
    python -m fasthmr_lib.bench --preset hmr2 --compare baseline fasthmr --batch 8 --json

Models carry random weights (speed and MACs do not depend on the values). What is measured is
the backbone + SMPL head (:class:`fasthmr_lib.eval.profile.BackboneHead`); the SMPL layer, the
segmenter and the detector are not included. Named configurations for ``--compare``:

* ``baseline``  all blocks, 192 tokens;
* ``eclm``      the first 28 blocks (``hmr2``; 26 for ``camerahmr``) as a stand-in for ECLM's depth;
* ``masktome``  all blocks + Mask-ToMe (3 layers, 40 per layer, keep 90) with a synthetic mask;
* ``fasthmr``   ECLM depth + Mask-ToMe + the diffusion decoder's per-frame cost when
  ``fasthmr_lib.diffusion`` provides it (otherwise reported as absent).

Configurations of one run are timed interleaved, and ``speedup`` is the images/s ratio to the
first configuration at the same batch size.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from typing import Any

import torch

from .config import get_preset
from .eval import profile as P

ECLM_DEPTH = {"hmr2": 28, "camerahmr": 26}  # paper Table 12: 4 / 6 blocks merged away
PAPER_MASKTOME = (3, 40, 90)


@dataclass
class BenchConfig:
    name: str
    depth: int | None = None
    mask_tome: tuple[int, int, int] | None = None
    use_mask: bool = True
    prop_attn: bool = False
    decoder: bool = False


def named_config(name: str, preset: str, args: argparse.Namespace | None = None) -> BenchConfig:
    full = get_preset(preset).vit.depth
    eclm = ECLM_DEPTH.get(preset, full - max(1, full // 8))
    use_mask = not getattr(args, "no_mask", False)
    prop = bool(getattr(args, "prop_attn", False))
    table = {
        "baseline": BenchConfig("baseline"),
        "eclm": BenchConfig("eclm", depth=eclm),
        "masktome": BenchConfig("masktome", mask_tome=PAPER_MASKTOME, use_mask=use_mask, prop_attn=prop),
        "fasthmr": BenchConfig(
            "fasthmr", depth=eclm, mask_tome=PAPER_MASKTOME, use_mask=use_mask, prop_attn=prop, decoder=True
        ),
    }
    if name not in table:
        raise SystemExit(f"--compare: unknown configuration {name!r}; expected some of {sorted(table)}")
    return table[name]


def parse_mask_tome(text: str) -> tuple[int, int, int]:
    try:
        a, b, c = (int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--mask-tome expects L,N_L,M (three integers), got {text!r}"
        ) from None
    return a, b, c


def apply_mask_tome(model: Any, cfg: BenchConfig) -> Any:
    """Install Mask-ToMe via ``fasthmr_lib.merging.patch.apply`` (imported lazily)."""
    try:
        from .merging import patch
    except ImportError as e:
        raise RuntimeError(f"Mask-ToMe requested but fasthmr_lib.merging.patch is not available ({e})") from e
    layers, per_layer, min_tokens = cfg.mask_tome
    mcfg = patch.MaskToMeConfig(
        layers=layers,
        per_layer=per_layer,
        min_tokens=min_tokens,
        use_mask=cfg.use_mask,
        prop_attn=cfg.prop_attn,
    )
    return patch.apply(model, mcfg)


def decoder_cost() -> tuple[Any, str]:
    """(callable(batch) -> None running the decoder for ``batch`` frames, description) or (None, why).

    Looks for ``fasthmr_lib.diffusion.bench_decoder(batch, device)`` -> callable; the interface is
    optional and reported as absent when missing."""
    try:
        from . import diffusion
    except ImportError as e:
        return None, f"absent (fasthmr_lib.diffusion not importable: {e})"
    fn = getattr(diffusion, "bench_decoder", None)
    if fn is None:
        return None, "absent (fasthmr_lib.diffusion provides no bench_decoder)"
    return fn, "included (fasthmr_lib.diffusion.bench_decoder, per frame)"


def build(base: Any, cfg: BenchConfig) -> Any:
    m = P.shallow_clone(base)
    P.truncate_depth(m, cfg.depth)
    if cfg.mask_tome is not None:
        apply_mask_tome(m, cfg)
    return m.eval()


def _inputs(cfg: BenchConfig, batch: int, device: str) -> tuple[torch.Tensor, dict[str, Any]]:
    img = torch.randn(batch, 3, 256, 256, device=device)
    kw: dict[str, Any] = {}
    if cfg.mask_tome is not None and cfg.use_mask:
        kw["person_mask"] = P.synthetic_person_mask(batch).to(device)
    return img, kw


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    if args.threads:
        torch.set_num_threads(args.threads)
    preset = args.preset
    if args.compare:
        configs = [named_config(n, preset, args) for n in args.compare]
    else:
        mt = None if args.mask_tome is None else args.mask_tome
        configs = [BenchConfig("custom", args.depth, mt, not args.no_mask, args.prop_attn)]
    if any(c.mask_tome for c in configs):  # fail fast, before building a large model
        try:
            from .merging import patch  # noqa: F401
        except ImportError as e:
            msg = f"Mask-ToMe requested but fasthmr_lib.merging.patch is not available ({e})"
            raise RuntimeError(msg) from e
    need_real = not args.no_time or any(c.mask_tome for c in configs)
    base = P.build_bench_model(preset).to(args.device) if need_real else None
    dec_fn, dec_desc = decoder_cost() if any(c.decoder for c in configs) else (None, None)

    rows: list[dict[str, Any]] = []
    models: dict[str, Any] = {}
    for cfg in configs:
        if base is None:
            m = P.build_meta_model(preset, cfg.depth)
            img, kw = torch.randn(1, 3, 256, 256, device="meta"), {}
        else:
            m = build(base, cfg)
            img, kw = _inputs(cfg, 1, args.device)
        mc = P.count_macs(m, img, **kw)
        out = mc.output if isinstance(mc.output, dict) else {}
        tpb = out.get("tokens_per_block") or [get_preset(preset).vit.num_tokens] * len(m.backbone.blocks)
        models[cfg.name] = m
        rows.append(
            {
                "preset": preset,
                "config": cfg.name,
                "depth": len(m.backbone.blocks),
                "mask_tome": list(cfg.mask_tome) if cfg.mask_tome else None,
                "use_mask": cfg.use_mask if cfg.mask_tome else None,
                "prop_attn": cfg.prop_attn if cfg.mask_tome else None,
                "params": P.count_params(m),
                "macs_per_image": {
                    "all": mc.all,
                    "linear_conv": mc.linear_conv,
                    "by_component": mc.by_component,
                },
                "tokens_per_block": tpb,
                "decoder": dec_desc if cfg.decoder else None,
            }
        )
    if args.no_time:
        return [dict(r, batch=None) for r in rows]

    results: list[dict[str, Any]] = []
    for batch in args.batch:
        calls = []
        for cfg in configs:
            m = models[cfg.name]
            img, kw = _inputs(cfg, batch, args.device)

            def fn(m=m, img=img, kw=kw, cfg=cfg, batch=batch):
                m(img, **kw)
                if cfg.decoder and dec_fn is not None:
                    dec_fn(batch, args.device)

            calls.append((cfg.name, fn))
        timed = P.time_side_by_side(
            calls, batch, warmup=args.warmup, repeats=args.repeats, device=args.device, progress=not args.json
        )
        if not args.json:
            print(P.format_comparison(timed), file=sys.stderr)
        base_ips = timed[0].images_per_s
        for r, t in zip(rows, timed):
            d = dict(r, batch=batch, **{k: v for k, v in t.as_dict().items() if k not in ("name", "batch")})
            d["speedup"] = t.images_per_s / base_ips
            results.append(d)
    return results


def _print_table(rows: list[dict[str, Any]]) -> None:
    for r in rows:
        p = r["params"]
        macs = r["macs_per_image"]
        line = (
            f"{r['preset']}/{r['config']}: depth {r['depth']}, params {p['total'] / 1e6:.1f} M "
            f"(backbone {p.get('backbone', 0) / 1e6:.1f} M, head {p.get('head', 0) / 1e6:.1f} M), "
            f"MACs/img linear+conv {macs['linear_conv'] / 1e9:.2f} G, all ops {macs['all'] / 1e9:.2f} G, "
            f"tokens {r['tokens_per_block'][0]}->{r['tokens_per_block'][-1]}"
        )
        if r.get("batch") is not None:
            line += (
                f" | batch {r['batch']}: {r['images_per_s']:.2f} img/s,"
                f" latency {r['latency_ms_median']:.0f} ms"
                f" (IQR {r['latency_ms_iqr']:.0f}), speedup {r['speedup']:.2f}x, threads {r['threads']}"
            )
        if r.get("decoder"):
            line += f" | decoder {r['decoder']}"
        print(line)


def make_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m fasthmr_lib.bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="hmr2", help="model preset (hmr2, camerahmr, small, tiny)")
    ap.add_argument("--depth", type=int, default=None, help="keep the first N backbone blocks")
    ap.add_argument("--batch", type=int, nargs="+", default=[1], help="batch sizes to time")
    ap.add_argument("--no-time", action="store_true", help="counts only (params, MACs, tokens)")
    ap.add_argument("--json", action="store_true", help="one JSON object per configuration on stdout")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: leave the default)")
    ap.add_argument("--repeats", type=int, default=3, help="timed repeats per configuration")
    ap.add_argument("--warmup", type=int, default=1, help="warm-up runs per configuration")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--mask-tome", type=parse_mask_tome, default=None, metavar="L,N_L,M")
    ap.add_argument("--no-mask", action="store_true", help="Mask-ToMe without person protection (plain ToMe)")
    ap.add_argument("--prop-attn", action="store_true", help="proportional attention (log-size bias)")
    ap.add_argument("--compare", nargs="+", default=None, metavar="NAME",
                    help="configurations timed side by side: baseline eclm masktome fasthmr")  # fmt: skip
    return ap


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    try:
        get_preset(args.preset)
    except KeyError as e:
        print(f"error: --preset: {e.args[0]}", file=sys.stderr)
        return 2
    if any(b < 1 for b in args.batch) or args.repeats < 1:
        print("error: --batch values and --repeats must be >= 1", file=sys.stderr)
        return 2
    try:
        rows = run(args)
    except (RuntimeError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if args.json:
        for r in rows:
            print(json.dumps(r))
    else:
        _print_table(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
