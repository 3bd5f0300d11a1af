"""MOTRv2 parity with the official code: deterministic fill, the reference frames and proposals,
per-frame raw outputs, ids, scores, boxes and MOT lines (tolerances from the spec)."""

import json

import numpy as np
import pytest
import torch

from services.tracker.motrv2.config import MOTRv2Config
from services.tracker.motrv2.model import MOTRv2
from services.tracker.motrv2.runtime import MOTRv2Runtime, preprocess, proposals_from_rows


@pytest.fixture(scope="module")
def reference(shared_dir, param_fill):
    folder = shared_dir / "reference" / "motrv2"
    fill = param_fill
    manifest = json.loads((folder / "manifest_official.json").read_text())
    return (
        fill,
        manifest,
        np.load(folder / "vectors_official.npz"),
        json.loads((folder / "vectors_official.json").read_text()),
    )


def filled_model(fill, manifest) -> MOTRv2:
    """Every tensor filled by name; aliases take the fill of their first name in state-dict order."""
    model = MOTRv2(MOTRv2Config())
    shared = model.state_dict()
    first: dict[int, str] = {}
    state = {}
    for name, shape, _ in manifest:
        pointer = shared[name].data_ptr()
        state[name] = state[first[pointer]] if pointer in first else torch.from_numpy(fill.fill_value(name, shape))
        first.setdefault(pointer, name)
    model.load_state_dict(state, strict=True)
    return model.eval()


def test_preprocessing_and_proposals_equal_the_official_script(reference):
    _, _, vectors, info = reference
    frame_rgb = vectors["f0/frame_uint8"]
    assert torch.equal(preprocess(np.ascontiguousarray(frame_rgb[:, :, ::-1])), torch.from_numpy(vectors["f0/input"]))
    assert list(preprocess(np.zeros((1080, 1920, 3), np.uint8)).shape[-2:]) == info["input_size_hw"]
    # proposals are normalised by the original frame size: a 10x20 box at (0,0) of a 960x540 frame
    got = proposals_from_rows(np.array([[0.0, 0.0, 10.0, 20.0, 0.5]]), (540, 960))
    assert torch.allclose(got, torch.tensor([[5 / 960, 10 / 540, 10 / 960, 20 / 540, 0.5]]))


def test_tracking_parity_on_the_reference_frames(reference):
    fill, manifest, vectors, info = reference
    torch.manual_seed(0)
    runtime = MOTRv2Runtime(
        filled_model(fill, manifest),
        score_threshold=info["score_threshold"],
        filter_score_threshold=info["filter_score_threshold"],
        update_score_threshold=info["update_score_threshold"],
        miss_tolerance=info["miss_tolerance"],
        area_threshold=info["area_threshold"],
    )
    lines = []
    for i in range(info["frames"]):
        tracks = runtime.step(
            torch.from_numpy(vectors[f"f{i}/input"]),
            torch.from_numpy(vectors[f"f{i}/proposals"]),
            tuple(info["frame_size_hw"]),
        )
        assert tracks.obj_idxes.tolist() == vectors[f"f{i}/obj_idxes"].tolist(), f"frame {i + 1}"
        assert tracks.disappear_time.tolist() == vectors[f"f{i}/disappear_time"].tolist()
        np.testing.assert_allclose(tracks.scores.numpy(), vectors[f"f{i}/scores"], atol=1e-5)
        np.testing.assert_allclose(tracks.pred_logits.numpy(), vectors[f"f{i}/pred_logits"], atol=1e-4)
        np.testing.assert_allclose(tracks.boxes_xyxy.numpy(), vectors[f"f{i}/boxes_xyxy"], atol=1e-3)
        np.testing.assert_allclose(tracks.pred_boxes.numpy(), vectors[f"f{i}/pred_boxes"], atol=1e-5)
        lines += runtime.lines(i + 1, tracks)
    # the official script prints 2 decimals: boxes equal to ~2e-4 px can still round apart by
    # one unit of the last digit on another CPU, so frame, id and format are exact, values within 0.01
    assert len(lines) == len(info["mot_lines"])
    for got, expected in zip(lines, info["mot_lines"], strict=True):
        got_fields, expected_fields = got.rstrip("\n").split(","), expected.rstrip("\n").split(",")
        assert got_fields[:2] == expected_fields[:2] and got.endswith(",1,-1,-1,-1\n"), (got, expected)
        assert [len(v.split(".")[-1]) for v in got_fields] == [len(v.split(".")[-1]) for v in expected_fields]
        deltas = np.abs(np.array(got_fields[2:], float) - np.array(expected_fields[2:], float))
        assert (deltas <= 0.0100001).all(), (got, expected)
