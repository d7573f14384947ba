"""Motion VAE and latent denoiser (fasthmr_lib/diffusion/{vae,denoiser}.py): shapes, skips, losses."""

from __future__ import annotations

import pytest
import torch

from fasthmr_lib.diffusion.denoiser import DENOISER_PRESETS, LatentDenoiser, denoiser_config
from fasthmr_lib.diffusion.vae import VAE_PRESETS, MotionVAE, SkipTransformer, vae_config, vae_loss


def test_paper_presets_match_tables_14_15():
    v, d = VAE_PRESETS["paper"], DENOISER_PRESETS["paper"]
    assert (v.num_frames, v.nfeats, v.latent_len, v.latent_dim) == (243, 133, 27, 512)
    assert (v.ff_dim, v.num_layers, v.num_heads, v.dropout, v.activation) == (1024, 9, 4, 0.1, "gelu")
    assert (d.d_model, d.cond_dim, d.num_layers, d.num_heads, d.ff_dim, d.dropout) == (
        512,
        1024,
        5,
        4,
        1024,
        0.001,
    )
    assert d.flip_sin_to_cos and d.freq_shift == 0 and not d.normalize_before


def test_paper_shapes_forward_batch1():
    torch.manual_seed(0)
    vae, den = MotionVAE("paper").eval(), LatentDenoiser("paper").eval()
    x = torch.randn(1, 243, 133)
    with torch.no_grad():
        out = vae(x)
        assert out["mu"].shape == out["logvar"].shape == out["z"].shape == (1, 27, 512)
        assert out["recon"].shape == (1, 243, 133)
        v = den(out["z"], torch.tensor([999]), torch.randn(1, 243, 1024))
    assert v.shape == (1, 27, 512) and torch.isfinite(v).all()
    assert len(vae.encoder.input_blocks) == 4 and len(vae.decoder.output_blocks) == 4
    assert len(den.encoder.input_blocks) == 2 and len(den.encoder.output_blocks) == 2


def test_skip_transformer_requires_odd_layers_and_uses_skips():
    with pytest.raises(ValueError, match="odd"):
        SkipTransformer(lambda: torch.nn.Identity(), 4, 8)
    st = SkipTransformer(lambda: torch.nn.Identity(), 3, 2, final_norm=False)
    with torch.no_grad():
        st.linear_blocks[0].weight.copy_(torch.tensor([[0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]))
        st.linear_blocks[0].bias.zero_()
    x = torch.randn(1, 5, 2)
    torch.testing.assert_close(st(x), x)  # the linear picks the skip half


def test_vae_loss_hand_computed():
    x = torch.zeros(1, 2, 3)
    out = {"recon": torch.ones(1, 2, 3), "mu": torch.ones(1, 1, 2), "logvar": torch.zeros(1, 1, 2)}
    loss = vae_loss(x, out, kl_weight=0.5)
    assert loss["rec"].item() == pytest.approx(1.0)
    assert loss["kl"].item() == pytest.approx(0.5)  # -0.5 (1 + 0 - 1 - 1) = 0.5 per element
    assert loss["loss"].item() == pytest.approx(1.25)


def test_bad_shapes_raise():
    vae = MotionVAE("tiny")
    with pytest.raises(ValueError, match="MotionVAE expects"):
        vae.encode(torch.zeros(1, 15, 133))
    den = LatentDenoiser("tiny")
    with pytest.raises(ValueError, match="cond must be"):
        den(torch.zeros(1, 2, 32), 5, torch.zeros(1, 16, 65))
    with pytest.raises(ValueError, match="unknown VAE preset"):
        vae_config("huge")


def test_denoiser_depends_on_time_and_condition():
    torch.manual_seed(0)
    den = LatentDenoiser(denoiser_config("tiny", dropout=0.0)).eval()
    z, c = torch.randn(2, 2, 32), torch.randn(2, 16, 64)
    with torch.no_grad():
        a, b = den(z, 999, c), den(z, 10, c)
        d = den(z, 999, c + 1)
        e = den(z, torch.tensor([999, 999]), c)
    assert (a - b).abs().max() > 1e-4 and (a - d).abs().max() > 1e-4
    torch.testing.assert_close(a, e)
    # latent width different from the model width goes through projections
    den2 = LatentDenoiser(denoiser_config("tiny", latent_dim=8, d_model=32))
    assert den2(torch.randn(1, 2, 8), 3, torch.randn(1, 16, 64)).shape == (1, 2, 8)


def test_temporal_latent_layout_is_local_in_encoder_input_and_decoder_query():
    """latent_layout="temporal": token k is the μ head of chunk k's mean-pooled encoding; the decoder's query
    of frame f starts from token ⌊fL/F⌋."""
    torch.manual_seed(0)
    cfg = vae_config("tiny", latent_layout="temporal", dropout=0.0)
    vae = MotionVAE(cfg).eval()
    assert not hasattr(vae, "global_motion_token")
    x = torch.randn(1, 16, 133)
    with torch.no_grad():
        mu, logvar = vae.encode(x)
    assert mu.shape == logvar.shape == (1, 2, 32)
    # the μ head sees the chunk means of the frame encodings
    with torch.no_grad():
        pooled = vae.encoder(vae.query_pos_encoder(vae.skel_embedding(x))).reshape(1, 2, 8, -1).mean(2)
        torch.testing.assert_close(mu, vae.mu_head(pooled))
    # the decoder's queries: frame f of chunk k carries z_k (+ PE); frames of one chunk share it
    z = torch.randn(1, 2, 32)
    captured = {}
    h = vae.decoder.register_forward_pre_hook(lambda m, args: captured.setdefault("q", args[0]))
    with torch.no_grad():
        vae.decode(z)
    h.remove()
    q = captured["q"] - vae.query_pos_decoder.pe[:16]
    torch.testing.assert_close(q[0, :8], z[0, :1].expand(8, -1))
    torch.testing.assert_close(q[0, 8:], z[0, 1:].expand(8, -1))
    with pytest.raises(ValueError, match="divide num_frames"):
        MotionVAE(vae_config("tiny", latent_layout="temporal", latent_len=3))
    with pytest.raises(ValueError, match="latent_layout must be"):
        MotionVAE(vae_config("tiny", latent_layout="frames"))


def test_denoiser_cond_pool_adds_chunk_mean_to_its_latent_token():
    torch.manual_seed(0)
    cfg = denoiser_config("tiny", dropout=0.0, cond_pool=True)
    den = LatentDenoiser(cfg).eval()
    z, c = torch.randn(1, 2, 32), torch.randn(1, 16, 64)
    captured = {}
    h = den.query_pos.register_forward_pre_hook(lambda m, args: captured.setdefault("x", args[0]))
    with torch.no_grad():
        den(z, 999, c)
    h.remove()
    e = den.emb_proj(c)
    expect = den.pose_embd(z) + torch.stack([e[:, :8].mean(1), e[:, 8:].mean(1)], 1)
    torch.testing.assert_close(captured["x"][:, :2], expect.detach())
    torch.testing.assert_close(captured["x"][:, 3:], e.detach())
    off = LatentDenoiser(denoiser_config("tiny", dropout=0.0)).eval()
    off.load_state_dict(den.state_dict())  # same weights, no pooled path: a different output
    with torch.no_grad():
        assert (off(z, 999, c) - den(z, 999, c)).abs().max() > 1e-4
    with pytest.raises(ValueError, match="cond_pool needs"):
        LatentDenoiser(denoiser_config("tiny", cond_pool=True, latent_len=3))


def test_denoiser_linear_cond_pool_starts_as_the_mean_and_keeps_frame_order():
    """cond_pool_mode="linear": at init the same latent input as the mean pooling; with its weight changed,
    latent token k's input is the linear map of chunk k's frames in order (swapping two frames of a chunk
    changes it, which the mean cannot see); bad modes are refused."""
    torch.manual_seed(0)
    mean = LatentDenoiser(denoiser_config("tiny", dropout=0.0, cond_pool=True)).eval()
    lin = LatentDenoiser(denoiser_config("tiny", dropout=0.0, cond_pool=True, cond_pool_mode="linear")).eval()
    lin.load_state_dict(mean.state_dict() | {k: v for k, v in lin.state_dict().items() if "cond_patch" in k})
    z, c = torch.randn(2, 2, 32), torch.randn(2, 16, 64)

    def latent_input(den, cond):
        captured = {}
        h = den.query_pos.register_forward_pre_hook(lambda m, args: captured.setdefault("x", args[0]))
        with torch.no_grad():
            den(z, 999, cond)
        h.remove()
        return captured["x"][:, :2]

    torch.testing.assert_close(latent_input(lin, c), latent_input(mean, c))
    with torch.no_grad():
        lin.cond_patch.weight.normal_(0, 0.05)
        lin.cond_patch.bias.normal_(0, 0.05)
    e = lin.emb_proj(c).detach()
    want = lin.pose_embd(z) + lin.cond_patch(e.reshape(2, 2, 8 * e.shape[-1]))
    torch.testing.assert_close(latent_input(lin, c), want.detach())
    swapped = c.clone()
    swapped[:, [0, 1]] = c[:, [1, 0]]  # two frames of chunk 0
    assert (latent_input(lin, swapped)[:, 0] - latent_input(lin, c)[:, 0]).abs().max() > 1e-4
    torch.testing.assert_close(latent_input(mean, swapped), latent_input(mean, c))
    with pytest.raises(ValueError, match="cond_pool_mode"):
        LatentDenoiser(denoiser_config("tiny", cond_pool=True, cond_pool_mode="max"))
