"""Checkpoints: made files in the released 4D-Humans and CameraHMR layouts, our safetensors format,
and one clear error for missing / truncated / foreign files."""

import dataclasses
import json
import sys

import pytest
import torch

from data_prep import paper_standins as PS
from fasthmr_lib.config import get_preset
from fasthmr_lib.models.checkpoints import (
    CheckpointError,
    load_4dhumans,
    load_camerahmr,
    load_checkpoint,
    save_checkpoint,
)
from fasthmr_lib.models.hmr import HMR


def tiny_bbox_cfg():
    cfg = get_preset("tiny")
    return cfg.replace(
        name="tiny_bbox", head=dataclasses.replace(cfg.head, token_input="bbox", kp_readout=88)
    )


def reference(cfg, body, seed=0):
    torch.manual_seed(seed)
    model = HMR(cfg, smpl=body).eval()
    with torch.no_grad():  # make the mean-parameter buffers differ from the body folder's
        model.head.init_cam.add_(0.05)
        model.head.init_betas.normal_()
    return model


def write_4dhumans(tmp_path, model, monkeypatch, head_depth=None):
    """The 4D-Humans release layout under ``tmp_path`` (data_prep.paper_standins.write_4dhumans_release)."""
    ckpt, sd = PS.write_4dhumans_release(tmp_path, model, head_depth=head_depth)
    assert "yacs" not in sys.modules
    return ckpt, sd


def write_camerahmr(tmp_path, model):
    return PS.write_camerahmr_release(tmp_path, model)


def assert_same_weights(model, sd, prefix_map):
    msd = model.state_dict()
    n = 0
    for k, v in sd.items():
        for src, dst in prefix_map.items():
            if k.startswith(src):
                assert torch.equal(msd[dst + k[len(src) :]], v), k
                n += 1
    assert n == sum(1 for k in msd if k.startswith(tuple(prefix_map.values())))
    return n


def test_4dhumans_round_trip(tmp_path, fake_body, monkeypatch):
    ref = reference(get_preset("tiny"), fake_body)
    ckpt, sd = write_4dhumans(tmp_path, ref, monkeypatch)
    with pytest.raises(Exception, match="[Ww]eights only load failed"):
        torch.load(ckpt, weights_only=True)  # as the released file: a pickled config object inside
    model = load_4dhumans(ckpt, cfg="tiny", smpl=fake_body)
    n = assert_same_weights(model, sd, {"backbone.": "backbone.", "smpl_head.": "head."})
    info = model.checkpoint_info
    assert info["loaded"] == n and info["missing"] == [] and info["unexpected"] == []
    assert info["ignored_prefixes"] == ["discriminator", "initialized", "smpl"]
    assert info["model_config_yaml"].endswith("model_config.yaml")
    img = torch.randn(2, 3, 256, 256)
    with torch.no_grad():
        a, b = ref(img), model(img)
    for k in ("rotmat", "betas", "cam", "cam_t", "joints3d", "vertices", "joints2d", "head_token"):
        torch.testing.assert_close(a[k], b[k], atol=0, rtol=0, msg=k)


def test_4dhumans_yaml_head_depth_must_match_the_weights(tmp_path, fake_body, monkeypatch):
    ref = reference(get_preset("tiny"), fake_body)
    ckpt, _ = write_4dhumans(tmp_path, ref, monkeypatch, head_depth=2)  # yaml says 2 layers, file has 1
    with pytest.raises(CheckpointError) as e:
        load_4dhumans(ckpt, cfg="tiny", smpl=fake_body)
    msg = str(e.value)
    assert str(ckpt) in msg and "missing keys" in msg and "layers.1." in msg and "nothing was loaded" in msg


def test_4dhumans_strict_reports_unexpected_and_missing_keys(tmp_path, fake_body, monkeypatch):
    ref = reference(get_preset("tiny"), fake_body)
    ckpt, sd = write_4dhumans(tmp_path, ref, monkeypatch)
    raw = torch.load(ckpt, weights_only=False, map_location="cpu", pickle_module=_plain_pickle_with_stub())
    raw["state_dict"]["smpl_head.extra_layer.weight"] = torch.zeros(3)
    del raw["state_dict"]["backbone.blocks.0.mlp.fc1.bias"]
    del raw["hyper_parameters"]
    torch.save(raw, ckpt)
    with pytest.raises(CheckpointError) as e:
        load_4dhumans(ckpt, cfg="tiny", smpl=fake_body)
    msg = str(e.value)
    assert "smpl_head.extra_layer.weight" in msg and "backbone.blocks.0.mlp.fc1.bias" in msg
    model = load_4dhumans(ckpt, cfg="tiny", smpl=fake_body, strict=False)
    assert model.checkpoint_info["unexpected"] == ["smpl_head.extra_layer.weight"]
    assert model.checkpoint_info["missing"] == ["backbone.blocks.0.mlp.fc1.bias"]


def _plain_pickle_with_stub():
    from fasthmr_lib.models import checkpoints

    return checkpoints._restricted_pickle


def test_camerahmr_round_trip(tmp_path, fake_body):
    ref = reference(tiny_bbox_cfg(), fake_body)
    path, sd = write_camerahmr(tmp_path, ref)
    model = load_camerahmr(path, cfg=tiny_bbox_cfg(), smpl=fake_body)
    assert "head.deckp.weight" in model.state_dict()
    assert_same_weights(model, sd, {"backbone.": "backbone.", "smpl_head.": "head."})
    assert model.checkpoint_info["ignored_prefixes"] == ["cam_model", "smpl"]
    img, info = torch.randn(2, 3, 256, 256), torch.tensor([[0.1, -0.2, 0.4], [0.0, 0.3, 0.8]])
    with torch.no_grad():
        a, b = ref(img, bbox_info=info), model(img, bbox_info=info)
    for k in ("rotmat", "betas", "cam", "joints3d", "head_token"):
        torch.testing.assert_close(a[k], b[k], atol=0, rtol=0, msg=k)


def test_wrong_model_file_names_the_right_loader(tmp_path, fake_body, monkeypatch):
    path, _ = write_camerahmr(tmp_path, reference(tiny_bbox_cfg(), fake_body))
    with pytest.raises(CheckpointError, match="load_camerahmr"):
        load_4dhumans(path, cfg="tiny", smpl=fake_body)
    ckpt, _ = write_4dhumans(tmp_path, reference(get_preset("tiny"), fake_body), monkeypatch)
    with pytest.raises(CheckpointError, match="load_4dhumans"):
        load_camerahmr(ckpt, cfg=tiny_bbox_cfg(), smpl=fake_body)
    other = tmp_path / "other.ckpt"
    torch.save({"state_dict": {"encoder.weight": torch.zeros(2)}}, other)
    with pytest.raises(CheckpointError, match="not a 4D-Humans"):
        load_4dhumans(other, cfg="tiny", smpl=fake_body)


def test_missing_and_truncated_files(tmp_path, fake_body, monkeypatch):
    with pytest.raises(CheckpointError, match="not found.*nope.ckpt"):
        load_4dhumans(tmp_path / "nope.ckpt", cfg="tiny", smpl=fake_body)
    ckpt, _ = write_4dhumans(tmp_path, reference(get_preset("tiny"), fake_body), monkeypatch)
    data = ckpt.read_bytes()
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError) as e:
        load_4dhumans(cut, cfg="tiny", smpl=fake_body)
    assert str(cut) in str(e.value)
    # our own format
    out = save_checkpoint(reference(get_preset("tiny"), fake_body), tmp_path / "own")
    w = out / "model.safetensors"
    w.write_bytes(w.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="model.safetensors.*truncated"):
        load_checkpoint(out, smpl=fake_body)
    with pytest.raises(CheckpointError, match="config.json"):
        load_checkpoint(tmp_path / "empty_dir", smpl=fake_body)


def test_own_format_round_trip_is_bit_identical(tmp_path, fake_body):
    ref = reference(get_preset("tiny"), fake_body)
    del ref.backbone.blocks[2]  # as after layer merging: 3 blocks left
    out = save_checkpoint(ref, tmp_path / "ck", metadata={"recipe": "test", "mpjpe_mm": 81.5})
    doc = json.loads((out / "config.json").read_text())
    assert doc["model"]["vit"]["depth"] == 3 and doc["metadata"]["mpjpe_mm"] == 81.5
    model = load_checkpoint(out, smpl=fake_body)
    assert model.backbone.depth == 3 and model.checkpoint_info["metadata"]["recipe"] == "test"
    img = torch.randn(2, 3, 256, 256)
    with torch.no_grad():
        a, b = ref(img), model(img)
    for k in ("rotmat", "betas", "cam", "joints3d", "vertices", "head_token"):
        assert torch.equal(a[k], b[k]), k


def test_own_format_fp16(tmp_path, fake_body):
    ref = reference(get_preset("tiny"), fake_body)
    out = save_checkpoint(ref, tmp_path / "half", fp16=True)
    assert json.loads((out / "config.json").read_text())["dtype"] == "float16"
    full = save_checkpoint(ref, tmp_path / "full")
    assert (out / "model.safetensors").stat().st_size < 0.6 * (full / "model.safetensors").stat().st_size
    model = load_checkpoint(out, smpl=fake_body)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    for k, v in ref.state_dict().items():
        if k.startswith(("backbone.", "head.")):
            torch.testing.assert_close(model.state_dict()[k], v.half().float(), atol=0, rtol=0)


def test_hmr2_preset_has_the_released_key_set_sizes():
    """4D-Humans' state dict has 389 ``backbone.`` and 114 ``smpl_head.`` entries. The head is built on
    the meta device (shapes only); the backbone's names are counted at depth 32 with a narrow width."""
    from fasthmr_lib.models.head import SMPLHead
    from fasthmr_lib.models.vit import ViT

    cfg = get_preset("hmr2")
    with torch.device("meta"):
        head = SMPLHead(cfg.head, {"pose": [0.0] * 144, "shape": [0.0] * 10, "cam": [0.9, 0, 0]})
    hsd = head.state_dict()
    assert len(hsd) == 114
    assert tuple(hsd["transformer.transformer.layers.5.1.fn.to_kv.weight"].shape) == (1024, 1280)
    narrow = dataclasses.replace(cfg.vit, embed_dim=32, num_heads=2)
    vsd = ViT(narrow).state_dict()
    assert cfg.vit.depth == 32 and len(vsd) == 389
    assert {k for k in vsd if k.startswith("blocks.31.")} == {
        f"blocks.31.{n}" for n in ("norm1.weight", "norm1.bias", "attn.qkv.weight", "attn.qkv.bias",
                                   "attn.proj.weight", "attn.proj.bias", "norm2.weight", "norm2.bias",
                                   "mlp.fc1.weight", "mlp.fc1.bias", "mlp.fc2.weight", "mlp.fc2.bias")
    }  # fmt: skip


def test_release_layout_detected_before_any_full_read(tmp_path, fake_body, monkeypatch):
    """The release file (config objects in hyper_parameters) is read once, memory-mapped, with the
    restricted unpickler: the layout comes from the pickle alone, not from a failed weights_only read."""
    from fasthmr_lib.models import checkpoints as C

    ref = reference(get_preset("tiny"), fake_body)
    ckpt, _ = write_4dhumans(tmp_path, ref, monkeypatch)
    assert C._foreign_globals(ckpt) == ["yacs.config.CfgNode"]
    calls = []
    real_load = torch.load

    def counting_load(*args, **kw):
        calls.append({k: kw.get(k) for k in ("weights_only", "mmap")})
        return real_load(*args, **kw)

    monkeypatch.setattr(C.torch, "load", counting_load)
    load_4dhumans(ckpt, cfg="tiny", smpl=fake_body)
    assert calls == [{"weights_only": False, "mmap": True}]
    plain = tmp_path / "plain.ckpt"
    torch.save({"state_dict": PS.released_state_dict(ref)}, plain)  # tensors only: torch's safe loader
    calls.clear()
    raw = C._torch_load(plain, "a test file")
    assert calls == [{"weights_only": True, "mmap": True}] and "state_dict" in raw


def test_damaged_tensor_bytes_are_refused_by_name(tmp_path, fake_body, monkeypatch):
    """A file whose tensor bytes changed (here: NaN written into one weight) stops loading and names
    the tensor, in the file's own key names, instead of giving NaN outputs."""
    ref = reference(get_preset("tiny"), fake_body)
    with torch.no_grad():
        ref.head.decpose.weight[0, 0] = float("nan")
    ckpt, _ = write_4dhumans(tmp_path, ref, monkeypatch)
    with pytest.raises(CheckpointError, match=r"'smpl_head\.decpose\.weight' holds NaN or Inf"):
        load_4dhumans(ckpt, cfg="tiny", smpl=fake_body)
    out = tmp_path / "ours"
    save_checkpoint(ref, out)
    with pytest.raises(CheckpointError, match="decpose.weight' holds NaN"):
        load_checkpoint(out, smpl=fake_body)


def test_messages_name_missing_and_unexpected_keys_the_same_way(tmp_path, fake_body, monkeypatch):
    ref = reference(get_preset("tiny"), fake_body)
    ckpt, _ = write_4dhumans(tmp_path, ref, monkeypatch)
    raw = torch.load(ckpt, weights_only=False, map_location="cpu", pickle_module=_plain_pickle_with_stub())
    raw["state_dict"]["smpl_head.init_camera"] = raw["state_dict"].pop("smpl_head.init_cam")
    del raw["hyper_parameters"]  # its stand-in config object cannot be pickled again
    torch.save(raw, ckpt)
    with pytest.raises(CheckpointError) as e:
        load_4dhumans(ckpt, cfg="tiny", smpl=fake_body)
    msg = str(e.value)
    assert "'smpl_head.init_cam'" in msg and "'smpl_head.init_camera'" in msg and "'head.init_cam'" not in msg
