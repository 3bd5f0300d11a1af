"""D-FINE structure: backbone and hybrid encoder names, shapes and order equal the 15 official manifests."""

import json

import pytest
import torch

from services.detector.dfine.hgnetv2 import HGNetv2


@pytest.fixture(scope="module")
def configs(shared_dir):
    return json.loads((shared_dir / "reference" / "dfine" / "configs.json").read_text())


@pytest.mark.parametrize("size", ["n", "s", "m", "l", "x"])
@pytest.mark.parametrize("dataset", ["coco", "obj365", "crowdhuman"])
def test_backbone_state_dict_equals_the_manifest(shared_dir, configs, size, dataset):
    cfg = configs[f"{size}_{dataset}"]["backbone"]
    model = HGNetv2(cfg["name"], cfg["return_idx"], cfg["use_lab"], cfg["freeze_norm"])
    ours = [(f"backbone.{k}", list(v.shape)) for k, v in model.state_dict().items()]
    manifest = json.loads((shared_dir / "reference" / "dfine" / f"manifest_{size}_{dataset}.json").read_text())
    assert ours == [(n, s) for n, s, _ in manifest if n.startswith("backbone.")]


def test_backbone_outputs_strides_and_channels():
    model = HGNetv2("B0", (1, 2, 3)).eval()
    with torch.inference_mode():
        outs = model(torch.zeros(1, 3, 640, 640))
    assert [tuple(o.shape[1:]) for o in outs] == [(256, 80, 80), (512, 40, 40), (1024, 20, 20)]
    assert model.out_channels == [256, 512, 1024]


@pytest.mark.parametrize("size", ["n", "s", "m", "l", "x"])
@pytest.mark.parametrize("dataset", ["coco", "obj365", "crowdhuman"])
def test_hybrid_encoder_state_dict_equals_the_manifest(shared_dir, configs, size, dataset):
    from services.detector.dfine.hybrid_encoder import HybridEncoder

    e = configs[f"{size}_{dataset}"]["encoder"]
    model = HybridEncoder(e["in_channels"], e["hidden_dim"], e["use_encoder_idx"], e["num_encoder_layers"], e["nhead"],
                          e["dim_feedforward"], e["expansion"], e["depth_mult"])  # fmt: skip
    ours = [(f"encoder.{k}", list(v.shape)) for k, v in model.state_dict().items()]
    manifest = json.loads((shared_dir / "reference" / "dfine" / f"manifest_{size}_{dataset}.json").read_text())
    assert ours == [(n, s) for n, s, _ in manifest if n.startswith("encoder.")]
    feats = [torch.zeros(1, c, 640 // s, 640 // s) for c, s in zip(e["in_channels"], e["feat_strides"], strict=True)]
    with torch.inference_mode():
        outs = model.eval()(feats)
    assert [tuple(o.shape[1:]) for o in outs] == [(e["hidden_dim"], 640 // s, 640 // s) for s in e["feat_strides"]]
