"""Linear CKA: identities and invariances (Kornblith et al. 2019), and the per-block matrix."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fasthmr_lib.config import get_preset
from fasthmr_lib.eval import cka
from fasthmr_lib.models.vit import ViT


def rand(n, p, seed=0):
    return torch.randn(n, p, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("n,p", [(50, 8), (6, 40)])  # feature-space and Gram-space forms
def test_identical_features_give_one(n, p):
    x = rand(n, p)
    assert cka.linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("n,p", [(60, 10), (8, 30)])
def test_invariant_to_orthogonal_transform_and_isotropic_scaling(n, p):
    x, y = rand(n, p, 1), rand(n, p, 2) + 0.5 * rand(n, p, 1)
    q, _ = torch.linalg.qr(rand(p, p, 3))
    base = cka.linear_cka(x, y)
    assert 0.05 < base < 0.99
    assert cka.linear_cka(x @ q, y) == pytest.approx(base, rel=1e-9)
    assert cka.linear_cka(x, 7.5 * y) == pytest.approx(base, rel=1e-9)
    assert cka.linear_cka(3.0 * x @ q, 0.1 * y) == pytest.approx(base, rel=1e-9)
    # not invariant to a general (anisotropic) linear map
    d = torch.diag(torch.linspace(0.1, 10, p, dtype=torch.float64))
    assert abs(cka.linear_cka(x @ d, y) - base) > 1e-3


def test_hand_computed_value_and_forms_agree():
    # centred x = [-1, 0, 1], y = [1, -2, 1] (orthogonal after centring) -> 0; y = x^2 - mean idem
    x = torch.tensor([[0.0], [1.0], [2.0]])
    assert cka.linear_cka(x, torch.tensor([[1.0], [-2.0], [1.0]])) == pytest.approx(0.0, abs=1e-12)
    # 1-D features: CKA = squared Pearson correlation
    a, b = rand(20, 1, 4), rand(20, 1, 5)
    r = np.corrcoef(a[:, 0].numpy(), b[:, 0].numpy())[0, 1]
    assert cka.linear_cka(a, b) == pytest.approx(r**2, rel=1e-9)
    # same value through the Gram form (n < p) and the feature form (n >= p)
    x, y = rand(10, 12, 6), rand(10, 12, 7)
    k, l_ = x - x.mean(0), y - y.mean(0)
    feat = torch.linalg.norm(l_.T @ k) ** 2 / (torch.linalg.norm(k.T @ k) * torch.linalg.norm(l_.T @ l_))
    assert cka.linear_cka(x, y) == pytest.approx(float(feat), rel=1e-9)


def test_errors_are_clear():
    with pytest.raises(ValueError, match="same n"):
        cka.linear_cka(rand(5, 3), rand(6, 3))
    with pytest.raises(ValueError, match="constant"):
        cka.linear_cka(torch.ones(5, 3), rand(5, 3))
    with pytest.raises(ValueError, match="different numbers of examples"):
        cka.cka_matrix([torch.randn(2, 10, 4), torch.randn(2, 8, 4)], mode="tokens")


def test_block_cka_matrix_on_a_tiny_vit():
    torch.manual_seed(0)
    vit = ViT(get_preset("tiny").vit).eval()
    imgs = torch.randn(3, 3, 256, 256)
    feats = cka.block_outputs(vit, [imgs[:2], imgs[2:]])
    assert len(feats) == 4 and feats[0].shape == (3, 192, 64)
    with torch.no_grad():  # the hooks see exactly the blocks' outputs
        x = vit.patch_embed(imgs[:, :, :, 32:-32]) + vit.pos_embed[:, 1:] + vit.pos_embed[:, :1]
        x = vit.blocks[0](x)
    torch.testing.assert_close(feats[0], x)
    for mode in cka.MODES:
        m = cka.cka_matrix(feats, mode)
        assert m.shape == (4, 4)
        np.testing.assert_allclose(m, m.T)
        np.testing.assert_allclose(np.diag(m), 1.0)
        assert (m > 0).all() and (m <= 1 + 1e-9).all()
    m = cka.block_cka(vit, [{"img": imgs}], max_images=2)
    assert m.shape == (4, 4) and m[0, 1] < 1.0
