"""PyTorch DDP (fasthmr_lib.dist): 2 processes (gloo, cpu) train exactly like 1 process with the same
global batch — the baseline (with the dense head, augmentation, grad clipping) and both decoder stages —
resume exactly, and shard the head-token extraction."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.distributed as tdist
import torch.multiprocessing as mp

from fasthmr_lib import dist
from fasthmr_lib.data.samplers import RankSlice, StepBatchSampler
from fasthmr_lib.models.losses import LossWeights
from fasthmr_lib.models.recipe import TrainConfig

WORLD = 2
STEPS = 5
# global batch 4 = 2 x 2; warm-up, cosine, default augmentation and grad clipping, the dense part head
BASE_CFG = TrainConfig(
    steps=STEPS, batch=4, lr=1e-4, warmup=2, log_every=1, save_every=2, seed=3,
    loss_weights=LossWeights(dense_parts=0.1),
)  # fmt: skip
NO_DROPOUT = {"dropout": 0.0}  # dropout masks are per rank: equality with 1 process needs none
# lr 1e-4 (both recipes' default). Weights agree to W_ATOL = lr*steps/10, not to float32 rounding: Adam
# divides by sqrt(v), so parameters whose gradient is exactly zero in exact arithmetic (attention key
# biases; q/k of the 1-token HMR head) step by rounding noise / eps, which 2 partial means + all-reduce
# round differently than one mean (measured: <= 1.1e-5 at lr 1e-4, 8.5e-5 at lr 1e-3, after 5 steps).
W_ATOL = 1e-4 * STEPS / 10


# ------------------------------------------------------------------------------------------ workers


def _worker(rank: int, init_file: str, job: str, smpl_dir: str, out: str) -> None:
    torch.set_num_threads(1)
    tdist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        {"baseline": _baseline_job, "decoder": _decoder_job}[job](Path(smpl_dir), Path(out), rank)
    finally:
        tdist.destroy_process_group()


def _spawn(job: str, smpl_dir: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    init = out / "pg_init"
    mp.spawn(_worker, args=(str(init), job, str(smpl_dir), str(out)), nprocs=WORLD, join=True)


def _crops(body):
    from test_models_train import FakeCrops

    from fasthmr_lib.data.crop_cache import build_crop_cache

    return build_crop_cache(FakeCrops(body, n=10, parts=True), progress=False)


def _baseline_job(smpl_dir: Path, out: Path, rank: int = 0) -> dict:
    """Train BASE_CFG into out/full; then 3 steps into out/part and resume it to the end."""
    from test_models_train import _model

    from fasthmr_lib.body.smpl import load_body_model
    from fasthmr_lib.models.train import train

    body = load_body_model(smpl_dir)
    cache = _crops(body)
    kw = dict(dataset=cache, progress=False, final_save=False)
    full = train(BASE_CFG, out / "full", model=_model(body), **kw)
    torch.save(full.model.state_dict(), out / f"full_rank{rank}.pt")
    state = dist.current()
    if not state.active:
        return full.model.state_dict()
    with dist.rank_zero_first(state):  # as the crop-cache build: rank 0 writes, the others find the file
        built = not (out / "cache_marker").exists()
        if built:
            (out / "cache_marker").write_text(str(rank))
    (out / f"built_rank{rank}").write_text(str(built))
    train(BASE_CFG, out / "part", model=_model(body), stop_at=3, **kw)
    torch.manual_seed(99)  # a different init: the saved state overwrites it
    res = train(BASE_CFG, out / "part", model=_model(body), resume=True, **kw)
    torch.save(res.model.state_dict(), out / f"resumed_rank{rank}.pt")
    return full.model.state_dict()


def _decoder_job(smpl_dir: Path, out: Path, rank: int = 0) -> None:
    """Both decoder stages (augmented windows, sampled latents, terminal timesteps) + token extraction."""
    from fasthmr_lib.body.hybrik import HybrIKBody
    from fasthmr_lib.body.smpl import load_body_model
    from fasthmr_lib.diffusion import training as TR

    hb = HybrIKBody.from_smpl(load_body_model(smpl_dir))
    feats = TR.clips_to_features(TR.procedural_motion(3, n_frames=40, seed=0, kinds=("walk", "squat")), hb)
    vcfg = TR.VAETrainConfig(
        preset="tiny", overrides=NO_DROPOUT, steps=STEPS, batch_size=4, lr=1e-4, ckpt_every=2, seed=1,
        p_reverse=0.5, p_warp=0.5,
    )  # fmt: skip
    vae, stats, _ = TR.train_vae(feats, hb, vcfg, out / "vae", progress=False, resume=False)
    g = torch.Generator().manual_seed(0)
    pairs = [(torch.randn(f.shape[0], 64, generator=g), f) for f in feats]
    dcfg = TR.DenoiserTrainConfig(
        preset="tiny", overrides=NO_DROPOUT, steps=STEPS, batch_size=4, lr=1e-4, ckpt_every=2, seed=2,
        use_mu=False, p_terminal=0.3,
    )  # fmt: skip
    den, _, _ = TR.train_denoiser(pairs, vae, stats, dcfg, out / "den", progress=False, resume=False)
    torch.save({"vae": vae.state_dict(), "den": den.state_dict()}, out / f"decoder_rank{rank}.pt")
    toks = TR.extract_head_tokens(_token_model, _Frames(), batch_size=2, progress=False)
    (out / f"tokens_rank{rank}.pkl").write_bytes(pickle.dumps(toks))


class _Frames(torch.utils.data.Dataset):
    items = [("b", 1), ("a", 2), ("a", 0), ("b", 0), ("a", 1), ("c", 0), ("b", 2)]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        cid, fr = self.items[i]
        img = torch.full((3, 4, 4), float(fr) + (10 if cid == "b" else 0))
        return {"img": img, "clip_id": cid, "frame": fr}


def _token_model(img):
    v = img.mean((1, 2, 3))
    return {"head_token": torch.stack([v, 2 * v], 1), "betas": v[:, None].expand(-1, 10)}


# ------------------------------------------------------------------------------------------ checks


def _assert_weights(ref: dict, got: dict, atol: float, what: str) -> None:
    assert ref.keys() == got.keys()
    for k in ref:
        torch.testing.assert_close(got[k], ref[k], atol=atol, rtol=0, msg=f"{what}: {k}")


def _assert_history(ref: pd.DataFrame, got: pd.DataFrame, total: str, what: str) -> None:
    """The optimised loss within 1e-5; every term within 1e-5 relative (a float32 term of ~70, as
    body_pose's, is resolved to ~8e-6: 2 partial means + all-reduce round differently than one mean)."""
    assert list(got["step"]) == list(range(1, STEPS + 1)) == list(ref["step"]), what
    np.testing.assert_allclose(got[total], ref[total], atol=1e-5, rtol=0, err_msg=f"{what}: {total}")
    for col in ref.columns:
        np.testing.assert_allclose(got[col], ref[col], atol=0, rtol=1e-5, err_msg=f"{what}: {col}")


def test_rank_slices_partition_the_global_batches():
    glob = list(StepBatchSampler(10, 4, seed=3, start=0, total=5))
    parts = [list(RankSlice(StepBatchSampler(10, 4, 3, 0, 5), 4, r, 2)) for r in range(2)]
    assert [a + b for a, b in zip(*parts)] == glob
    with pytest.raises(ValueError, match="divisible by the world size 3"):
        RankSlice(StepBatchSampler(10, 4, 3, 0, 5), 4, 0, 3)
    with pytest.raises(ValueError, match="batch=4 is the global batch"):
        dist.DistState(rank=1, world=3).batch_slice(4)
    assert dist.DistState(rank=1, world=2).batch_slice(4) == slice(2, 4)
    assert dist.current() == dist.SINGLE and dist.init_from_env() == dist.SINGLE  # no torchrun env


def test_baseline_two_processes_match_one(fake_smpl_dir, tmp_path):
    ref = _baseline_job(fake_smpl_dir, tmp_path / "one")
    ref_hist = pd.read_csv(tmp_path / "one" / "full" / "loss_history.csv")
    _spawn("baseline", fake_smpl_dir, tmp_path / "ddp")
    ddp = tmp_path / "ddp"
    _assert_history(ref_hist, pd.read_csv(ddp / "full" / "loss_history.csv"), "total", "baseline")
    r0, r1 = (torch.load(ddp / f"full_rank{r}.pt") for r in range(WORLD))
    _assert_weights(r0, r1, 0.0, "replicas")  # the same averaged gradients on both ranks
    _assert_weights(ref, r0, W_ATOL, "2 processes vs 1")
    _assert_weights(r0, torch.load(ddp / "resumed_rank0.pt"), 0.0, "DDP resume")
    _assert_weights(r0, torch.load(ddp / "resumed_rank1.pt"), 0.0, "DDP resume rank 1")
    pd.testing.assert_frame_equal(
        pd.read_csv(ddp / "full" / "loss_history.csv"), pd.read_csv(ddp / "part" / "loss_history.csv")
    )
    assert len(torch.load(ddp / "part" / "train_state.pt", weights_only=False)["rng_ranks"]) == WORLD
    assert [(ddp / f"built_rank{r}").read_text() for r in range(WORLD)] == ["True", "False"]


def test_decoder_two_processes_match_one(fake_smpl_dir, tmp_path):
    _decoder_job(fake_smpl_dir, tmp_path / "one")
    _spawn("decoder", fake_smpl_dir, tmp_path / "ddp")
    one, ddp = tmp_path / "one", tmp_path / "ddp"
    for stage in ("vae", "den"):
        ref_h, got_h = (pd.read_csv(d / stage / "loss_history.csv") for d in (one, ddp))
        _assert_history(ref_h, got_h, "loss", stage)
    ref = torch.load(one / "decoder_rank0.pt")
    r0, r1 = (torch.load(ddp / f"decoder_rank{r}.pt") for r in range(WORLD))
    for stage in ("vae", "den"):
        _assert_weights(r0[stage], r1[stage], 0.0, f"{stage} replicas")
        _assert_weights(ref[stage], r0[stage], W_ATOL, f"{stage}: 2 processes vs 1")
    t1 = pickle.loads((one / "tokens_rank0.pkl").read_bytes())
    for r in range(WORLD):  # every rank holds the whole, merged extraction
        tr = pickle.loads((ddp / f"tokens_rank{r}.pkl").read_bytes())
        assert sorted(tr) == sorted(t1) == ["a", "b", "c"]
        for cid in t1:
            for k in t1[cid]:
                np.testing.assert_array_equal(tr[cid][k], t1[cid][k])


@pytest.fixture(autouse=True)
def _loopback(monkeypatch):
    """gloo on the loopback interface (the test machine may have no other)."""
    monkeypatch.setenv("GLOO_SOCKET_IFNAME", os.environ.get("GLOO_SOCKET_IFNAME", "lo"))


def test_decoder_cli_extracts_tokens_and_trains_both_stages(tmp_path, embedded_body_dir):
    """python -m fasthmr_lib.train_decoder on the tiny world (single process; the same code runs
    under torchrun): tokens of a saved baseline, VAE, denoiser conditioned on the baseline's width."""
    from data_prep.build_world import build_world
    from fasthmr_lib.body.smpl import load_body_model
    from fasthmr_lib.data.records import world_root
    from fasthmr_lib.diffusion import training as TR
    from fasthmr_lib.io import sha256_file
    from fasthmr_lib.models.checkpoints import save_checkpoint
    from fasthmr_lib.models.hmr import build_model
    from fasthmr_lib.train_decoder import main

    build_world("tiny", progress=False)  # notebook 00's job (idempotent)
    torch.manual_seed(0)
    save_checkpoint(build_model("tiny", smpl=load_body_model()), tmp_path / "base")
    # one world given twice: the --world list pools its clips (shipped decoder: default train_motion)
    argv = ["--checkpoint", str(tmp_path / "base"), "--world", "tiny", "tiny", "--preset", "tiny",
            "--motion-clips", "2", "--motion-frames", "32", "--vae-steps", "2", "--denoiser-steps", "3",
            "--batch", "4", "--extract-batch", "48", "--out", str(tmp_path / "dec")]  # fmt: skip
    out = main(argv)
    _, _, vmeta = TR.load_vae(out / "vae")
    den, dmeta = TR.load_denoiser(out / "denoiser")
    assert vmeta["complete"] and vmeta["step"] == 2 and dmeta["complete"] and dmeta["step"] == 3
    assert den.cfg.cond_dim == build_model("tiny", smpl=load_body_model()).cfg.head.dim
    assert len(pd.read_csv(out / "denoiser" / "loss_history.csv")) == 3
    # the decoder records the baseline it was trained on (notebooks 04/05 use it only with that baseline)
    assert TR.shipped_decoder_condition(out) == sha256_file(tmp_path / "base" / "model.safetensors")[:8]
    run = json.loads((out / "train_run.json").read_text())
    n_train = len(list((world_root("tiny") / "train").glob("*.npz")))
    assert run["clips"] == 2 * n_train and run["params"]["world"] == ["tiny", "tiny"]
    assert run["command"].startswith("python -m fasthmr_lib.train_decoder --checkpoint")
    # stage 2 alone on a trained VAE (--vae), with the denoiser regularisers: <out> is a whole decoder
    out3 = main([*argv[:-1], str(tmp_path / "dec3"), "--vae", str(out / "vae"), "--cond-noise", "0.5",
                 "--dropout", "0.2"])  # fmt: skip
    vae_bytes = (out / "vae" / "model.safetensors").read_bytes()
    assert (out3 / "vae" / "model.safetensors").read_bytes() == vae_bytes
    dmeta3 = TR.read_json(out3 / "denoiser" / "config.json")
    assert dmeta3["denoiser"]["dropout"] == 0.2 and dmeta3["train"]["cond_noise"] == 0.5
    assert TR.shipped_decoder_condition(out3) == TR.shipped_decoder_condition(out)
    # the head's own joints in the condition (--cond-head-joints), a temporal VAE and the pooled condition
    out4 = main([*argv[:-1], str(tmp_path / "dec4"), "--latent-layout", "temporal", "--cond-pool", "on",
                 "--cond-head-joints"])  # fmt: skip
    vae4, _, _ = TR.load_vae(out4 / "vae")
    den4, _ = TR.load_denoiser(out4 / "denoiser")
    assert vae4.cfg.latent_layout == "temporal" and den4.cfg.cond_pool
    assert den4.cfg.cond_pose_dims == 87 and den4.cfg.cond_dim == den.cfg.cond_dim + 87
    from fasthmr_lib.diffusion.decoder import DiffusionDecoder

    dec4 = DiffusionDecoder.from_checkpoints(out4 / "vae", out4 / "denoiser", load_body_model())
    rot = torch.eye(3).expand(20, 24, 3, 3)
    got = dec4(torch.randn(20, den.cfg.cond_dim), torch.zeros(10), rotmat=rot)
    assert got["rotmat"].shape == (20, 24, 3, 3) and torch.isfinite(got["rotmat"]).all()
    with pytest.raises(ValueError, match="--latent-layout shapes a VAE trained here"):
        main([*argv, "--vae", str(out / "vae"), "--latent-layout", "temporal"])
    with pytest.raises(FileNotFoundError, match="--world no_such_world: no split 'train'.*build_world"):
        main([*argv[:2], "--world", "no_such_world", "--out", str(tmp_path / "dec2")])
