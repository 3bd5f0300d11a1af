"""The dfine detector end to end: official preprocessing, checkpoint formats, CLI det_db equal to the model."""

import numpy as np
import pytest
import torch

from services.detector.dfine.configs import dfine_config
from services.detector.dfine.detector import DFINEDetector, load_dfine, preprocess
from services.detector.dfine.model import DFINE
from services.detector.engine import run_detection
from services.gateway.cli import main
from shared.errors import InputError
from shared.formats.det_db import read_det_db
from shared.frames import open_frames
from shared.schemas import DetectOptions
from shared.synth import render_scene


@pytest.fixture(scope="module")
def checkpoint(shared_dir, param_fill, tmp_path_factory):
    """A filled N-COCO model saved the way official training saves it (EMA copy)."""
    fill = param_fill
    vectors = np.load(shared_dir / "reference" / "dfine" / "vectors_n_coco.npz")
    state = {}
    for name, tensor in DFINE(dfine_config("n", "coco")).state_dict().items():
        if f"const/{name}" in vectors.files:
            state[name] = torch.from_numpy(vectors[f"const/{name}"])
        elif tensor.is_floating_point():
            state[name] = torch.from_numpy(fill.fill_value(name, list(tensor.shape)))
        else:
            state[name] = tensor
    path = tmp_path_factory.mktemp("dfine") / "dfine_n_coco.pth"
    torch.save({"ema": {"module": state, "updates": 10}, "model": state}, path)
    return path, vectors


def test_preprocessing_equals_the_official_input(checkpoint):
    _, vectors = checkpoint
    got = preprocess(np.ascontiguousarray(vectors["image_uint8"][:, :, ::-1]))
    assert torch.equal(got, torch.from_numpy(vectors["input"][0]))


def test_cli_det_db_equals_the_in_process_model(checkpoint, tmp_path):
    path, _ = checkpoint
    scene = render_scene(tmp_path / "clip", frames=3, seed=2, size=(320, 180))
    out = tmp_path / "db.json"
    assert main(["detect", str(scene.video), "--detector", "dfine", "--weights", str(path), "--size", "n",
                 "--dataset", "coco", "--score-threshold", "0.3", "--sequence", "clip", "--out", str(out),
                 "--device", "cpu"]) == 0  # fmt: skip
    db = read_det_db(out)
    assert sorted(db) == [f"clip/img1/{f:06d}" for f in (1, 2, 3)]
    options = DetectOptions(detector="dfine", weights=str(path), size="n", dataset="coco", score_threshold=0.3)
    direct = run_detection(open_frames(scene.video), DFINEDetector(load_dfine(path, "n", "coco")), options)
    for frame, dets in direct.per_frame.items():
        np.testing.assert_allclose(db[f"clip/img1/{frame:06d}"], np.round(dets[:, :5], 2), atol=0.006)
    assert sum(len(d) for d in direct.per_frame.values()) > 0


def test_wrong_size_names_the_mismatching_keys(checkpoint):
    path, _ = checkpoint
    with pytest.raises(InputError, match="does not match D-FINE s/coco"):
        load_dfine(path, "s", "coco")
    with pytest.raises(InputError, match="dfine needs --weights"):
        DFINEDetector.from_weights(None, "n", "coco")


def test_class_filter_by_coco_name():
    from services.detector.registry import resolve_classes

    assert resolve_classes(DetectOptions(detector="dfine", dataset="coco", classes="person,sports_ball")) == {0, 32}
    # Objects365 outputs are indexed by the 1-based category id (0 unused): person is 1
    assert resolve_classes(DetectOptions(detector="dfine", dataset="obj365", classes="person")) == {1}
    with pytest.raises(InputError, match="unknown class 'referee'"):
        resolve_classes(DetectOptions(detector="dfine", dataset="coco", classes="referee"))


def test_batch_size_follows_the_device_unless_given():
    import torch

    from services.detector.dfine.detector import DFINEDetector

    assert DFINEDetector(torch.nn.Identity(), "cpu").batch_size == 1  # a CPU is fastest frame by frame
    assert DFINEDetector(torch.nn.Identity(), "cpu", batch_size=4).batch_size == 4
    assert DFINEDetector.__init__.__defaults__[1] is None  # the CLI/API option overrides only when given
