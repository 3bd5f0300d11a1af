"""MOTRv2 structure: official names and shapes, strict loading of official-layout checkpoints."""

import argparse
import json
import pickle

import pytest
import torch

from services.tracker.motrv2.checkpoint import load_model
from services.tracker.motrv2.config import MOTRv2Config
from services.tracker.motrv2.model import MOTRv2
from shared.errors import InputError


@pytest.fixture(scope="module")
def manifest(shared_dir):
    return json.loads((shared_dir / "reference" / "motrv2" / "manifest_official.json").read_text())


@pytest.fixture(scope="module")
def fill(param_fill):
    return param_fill.fill_value


def test_state_dict_names_shapes_and_order_equal_the_official_manifest(manifest):
    state = MOTRv2(MOTRv2Config()).state_dict()
    assert [(k, list(v.shape)) for k, v in state.items()] == [(n, s) for n, s, _ in manifest]
    assert (
        state["bbox_embed.0.layers.0.weight"].data_ptr()
        == state["transformer.decoder.bbox_embed.0.layers.0.weight"].data_ptr()
    )


def filled_state(manifest, fill, num_classes: int = 1) -> dict:
    state = {}
    for name, shape, _ in manifest:
        if name.startswith("class_embed."):
            shape = [num_classes, *shape[1:]]
        state[name] = torch.from_numpy(fill(name, shape))
    return state


@pytest.mark.parametrize("num_classes", [1, 2, 8])
def test_checkpoints_with_1_2_8_classes_load_strictly_through_torch_save(manifest, fill, tmp_path, num_classes):
    state = filled_state(manifest, fill, num_classes)
    args = argparse.Namespace(num_queries=10, dataset_file="e2e_volleyball_ball", lr=2e-4)
    path = tmp_path / "ckpt.pth"
    torch.save({"model": state, "args": args, "epoch": 4}, path)
    model = load_model(path)
    assert model.cfg.num_classes == num_classes
    loaded = model.state_dict()
    for name in ("class_embed.3.weight", "track_embed.norm1.weight", "backbone.0.body.layer3.5.bn2.running_var"):
        assert torch.equal(loaded[name], state[name])


def test_mismatched_checkpoint_names_the_keys(manifest, fill, tmp_path):
    state = filled_state(manifest, fill)
    state.pop("query_embed.weight")
    state["position.weight"] = torch.zeros(10, 4)
    state["extra.weight"] = torch.zeros(1)
    path = tmp_path / "bad.pth"
    torch.save({"model": state}, path)
    with pytest.raises(InputError, match="not a MOTRv2 state dict: no 'query_embed.weight'"):
        load_model(path)
    state["query_embed.weight"] = torch.zeros(10, 256)
    state["yolox_embed.weight"] = torch.zeros(2, 256)
    torch.save({"model": state}, path)
    with pytest.raises(InputError, match=r"unexpected \['extra.weight'\].*yolox_embed.weight \(2, 256\)"):
        load_model(path)


class Evil:
    def __reduce__(self):
        return (print, ("unpickled!",))


def test_untrusted_pickles_are_refused(tmp_path):
    path = tmp_path / "evil.pth"
    with open(path, "wb") as handle:
        pickle.dump({"model": {}, "payload": Evil()}, handle)
    with pytest.raises(InputError, match="not a loadable MOTRv2 checkpoint"):
        load_model(path)
