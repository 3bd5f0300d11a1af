"""The dfine detector end to end: official preprocessing, checkpoint formats, CLI det_db equal to the model."""

import subprocess
import sys
import threading
import time

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

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
    # a decoded frame (here a strided view, as a decoder may hand out): resized before the colour swap,
    # the same bytes as the official colour conversion first
    frame = np.random.default_rng(0).integers(0, 256, (1080, 1930, 3), dtype=np.uint8)[:, 5:1925]
    official = Image.fromarray(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)).resize((640, 640), Image.BILINEAR)
    assert torch.equal(preprocess(frame), torch.from_numpy(np.array(official)).permute(2, 0, 1).float().div(255))


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


def test_a_cpu_runs_two_frames_at_once_in_order_with_the_fused_backbone(checkpoint, tmp_path):
    path, _ = checkpoint
    scene = render_scene(tmp_path / "clip", frames=5, seed=4, size=(320, 180))
    frames = list(open_frames(scene.video))
    model = load_dfine(path, "n", "coco")
    parallel = DFINEDetector(model, "cpu", workers=2)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in parallel.model.backbone.modules())
    threads = torch.get_num_threads()
    got = list(parallel.detect(iter(frames)))
    assert torch.get_num_threads() == threads  # the per-frame thread count is restored
    torch.set_num_threads(1)  # one frame at a time on one thread: the same arithmetic as each worker's
    try:
        alone = list(DFINEDetector(model, "cpu", workers=1).detect(iter(frames)))
    finally:
        torch.set_num_threads(threads)
    assert [n for n, _ in got] == [1, 2, 3, 4, 5]
    for (_, a), (_, b) in zip(got, alone, strict=True):
        assert np.array_equal(a, b)


def test_detect_as_its_own_process_ends_quickly_and_completely(checkpoint, tmp_path):
    """`motpipe detect` ends with os._exit once its det_db is written: the file and the summary are whole,
    and a failure still prints its one line and exit code."""
    path, _ = checkpoint
    scene = render_scene(tmp_path / "clip", frames=3, seed=2, size=(320, 180))
    out = tmp_path / "db.json"
    command = [sys.executable, "-m", "services.gateway.cli", "detect", str(scene.video), "--detector", "dfine",
               "--size", "n", "--dataset", "coco", "--sequence", "clip", "--device", "cpu"]  # fmt: skip
    done = subprocess.run([*command, "--weights", str(path), "--out", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "detections in 3/3 frames" in " ".join(done.stderr.split())  # the summary, flushed before the exit
    assert sorted(read_det_db(out)) == [f"clip/img1/{f:06d}" for f in (1, 2, 3)]
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    failed = subprocess.run([*command, "--weights", str(bad), "--out", str(tmp_path / "x.json")],
                            capture_output=True, text=True)  # fmt: skip
    assert failed.returncode == 2 and "not a torch.save checkpoint" in " ".join(failed.stderr.split())
    assert not (tmp_path / "x.json").exists()


def test_frames_are_read_ahead_from_the_start_and_stop_when_dropped():
    from shared.frames import prefetch

    produced = []

    def numbers():
        for i in range(1000):
            produced.append(i)
            yield i

    frames = prefetch(numbers(), depth=4)
    deadline = time.monotonic() + 5
    while len(produced) < 4 and time.monotonic() < deadline:  # before anyone asked for a frame
        time.sleep(0.01)
    assert len(produced) >= 4
    assert [next(frames), next(frames)] == [0, 1]
    del frames  # a consumer that stops early: the reading thread ends instead of waiting forever
    deadline = time.monotonic() + 5
    while any(t.name == "frame-prefetch" for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not any(t.name == "frame-prefetch" for t in threading.enumerate())
    assert len(produced) < 1000


def test_classes_mapped_to_motpipes_travel_in_the_sidecar_to_the_tracks(checkpoint, tmp_path):
    """`--classes player=person,ball="sports ball"` keeps those two COCO classes, calls them 1 and 2 in the
    det_db's classes sidecar (the det_db itself keeps the official bytes), and the tracks carry both."""
    import json

    from shared.formats.mot_txt import read_mot

    filled, _ = checkpoint
    state = torch.load(filled, weights_only=True)  # the filled model proposes only class 30: favour 0 and 32
    for weights in (state["model"], state["ema"]["module"]):
        for name in [n for n in weights if "score_head" in n and n.endswith("bias")]:
            weights[name] = weights[name].clone()
            weights[name][[0, 32]] += 20
    path = tmp_path / "person_and_ball.pth"
    torch.save(state, path)
    scene = render_scene(tmp_path / "clip", frames=4, seed=2, size=(320, 180))
    out = tmp_path / "db.json"
    assert main(["detect", str(scene.video), "--detector", "dfine", "--weights", str(path), "--size", "n",
                 "--dataset", "coco", "--classes", 'player=person,ball="sports ball"', "--score-threshold", "0",
                 "--sequence", "clip", "--out", str(out), "--device", "cpu"]) == 0  # fmt: skip
    db, classes = read_det_db(out), json.loads((tmp_path / "db.classes.json").read_text())
    assert all(len(classes[k]) == len(db[k]) for k in db)
    options = DetectOptions(detector="dfine", weights=str(path), size="n", dataset="coco", score_threshold=0)
    direct = run_detection(open_frames(scene.video), DFINEDetector(load_dfine(path, "n", "coco")), options)
    for frame, dets in direct.per_frame.items():  # exactly the person (0) and sports ball (32) rows, renamed
        kept = dets[np.isin(dets[:, 5], [0, 32])]
        assert classes[f"clip/img1/{frame:06d}"] == [1 if c == 0 else 2 for c in kept[:, 5]]
    assert {c for v in classes.values() for c in v} == {1, 2}
    assert main(["track", "--det-db", str(out), "--score-threshold", "0", "--out", str(tmp_path / "t.txt")]) == 0
    assert set(read_mot(tmp_path / "t.txt").cls.tolist()) == {1, 2}


def test_a_checkpoint_says_what_it_is(checkpoint, tmp_path, capsys):
    """No --size/--dataset: the same det_db as with them; a contradiction is one line, exit 2; the header is
    read without torch (tests/test_compose.py runs the API with torch unimportable)."""
    from services.detector.dfine.identify import identify

    path, _ = checkpoint
    assert str(identify(path)) == "D-FINE N with 80 classes (COCO)"
    scene = render_scene(tmp_path / "clip", frames=2, seed=2, size=(320, 180))
    common = ["detect", str(scene.video), "--detector", "dfine", "--weights", str(path), "--sequence", "clip",
              "--device", "cpu"]  # fmt: skip
    assert main([*common, "--size", "n", "--dataset", "coco", "--out", str(tmp_path / "given.json")]) == 0
    assert main([*common, "--out", str(tmp_path / "read.json")]) == 0
    assert (tmp_path / "given.json").read_bytes() == (tmp_path / "read.json").read_bytes()
    capsys.readouterr()
    assert main([*common, "--size", "l", "--out", str(tmp_path / "x.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("this checkpoint is D-FINE N with 80 classes (COCO); size l does not match"), err
    assert len(err.splitlines()) == 1 and not (tmp_path / "x.json").exists()
    assert main([*common, "--dataset", "obj365", "--out", str(tmp_path / "x.json")]) == 2
    assert "dataset obj365 does not match" in capsys.readouterr().err
    (tmp_path / "bad.pth").write_bytes(b"not a checkpoint")
    assert main(["detect", str(scene.video), "--detector", "dfine", "--weights", str(tmp_path / "bad.pth"),
                 "--out", str(tmp_path / "x.json")]) == 2  # fmt: skip
    assert "not a torch.save checkpoint" in capsys.readouterr().err


def test_frames_prepared_on_several_threads_arrive_in_order_and_give_the_same_det_db(checkpoint, tmp_path):
    """The GPU feed (`prepared_frames`: decode on one thread, BGR conversion and resize on several) gives the
    det_db of frames read and prepared one by one, and the batch made as uint8 on the device equals the
    official per-frame input."""
    from services.detector.dfine.detector import to_batch, to_input
    from shared.frames import prepared_frames

    path, _ = checkpoint
    scene = render_scene(tmp_path / "clip", frames=7, seed=5, size=(320, 180))
    detector = DFINEDetector(load_dfine(path, "n", "coco"), "cpu", batch_size=3, workers=1)
    options = DetectOptions(detector="dfine", score_threshold=0.2, sequence="clip")
    source = open_frames(scene.video)
    one_by_one = ((n, detector.prepare_frame(image)) for n, image in source)
    expected = run_detection(source, detector, options, frames=one_by_one).det_db()
    got = run_detection(source, detector, options, frames=prepared_frames(source, detector.prepare_frame, 3))
    assert list(got.det_db()) == list(expected) and len(expected) == 7
    for key, rows in expected.items():
        assert np.array_equal(got.det_db()[key], rows), key
    prepared = [detector.prepare_frame(image) for _, image in source]
    assert torch.equal(to_batch(prepared, "cpu"), torch.stack([to_input(f) for f in prepared]))


def test_prepared_frames_keep_order_under_uneven_work_and_name_a_bad_file(tmp_path):
    from shared.frames import prepared_frames

    for number in range(12):
        cv2.imwrite(str(tmp_path / f"{number:03d}.png"), np.full((8, 8, 3), number, np.uint8))
    rng = np.random.default_rng(0)

    def slow_sometimes(image):
        time.sleep(float(rng.uniform(0, 0.02)))  # later frames often finish first
        return int(image[0, 0, 0])

    frames = list(prepared_frames(open_frames(tmp_path), slow_sometimes, workers=4))
    assert frames == [(n + 1, n) for n in range(12)]
    (tmp_path / "005.png").write_bytes(b"not an image")
    with pytest.raises(InputError, match="not a readable image") as caught:
        list(prepared_frames(open_frames(tmp_path), None, workers=4))
    assert "005.png" in str(caught.value)
