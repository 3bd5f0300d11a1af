"""D-FINE through ONNX Runtime on the CPU (#28 item 3): `motpipe export dfine` writes the official deploy graph
(images + orig_target_sizes -> labels, boxes, scores) with what the file is in its metadata; on the reference
vectors its outputs equal the PyTorch model's within the D-FINE parity tolerances; `detect --weights X.onnx`
writes the det_db the PyTorch checkpoint writes, with no --size/--dataset; bad files say what is wrong."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment

from services.detector.dfine.detector import load_dfine
from services.detector.dfine.fuse import fuse_backbone
from services.detector.dfine.identify import identify
from services.detector.dfine.model import postprocess
from services.detector.dfine.onnx_detector import OnnxDFINEDetector
from services.gateway.cli import main
from shared.formats.det_db import read_det_db
from shared.synth import render_scene
from tests.test_api import TOKEN, api, stored_run  # noqa: F401 - fixtures
from tests.test_dfine_detector import checkpoint  # noqa: F401 - the filled N-COCO checkpoint

ort = pytest.importorskip("onnxruntime", reason="onnxruntime is in the models extra")


@pytest.fixture(scope="module")
def exported(checkpoint, tmp_path_factory):  # noqa: F811
    path, vectors = checkpoint
    folder = tmp_path_factory.mktemp("onnx")
    files = {}
    for batch in ("dynamic", "2"):
        files[batch] = folder / f"dfine_n_{batch}.onnx"
        assert main(["export", "dfine", "--weights", str(path), "--onnx", str(files[batch]), "--batch", batch]) == 0
    return path, vectors, files


def test_the_export_says_what_it_is_and_keeps_the_official_interface(exported):
    _, _, files = exported
    assert str(identify(files["dynamic"])) == "D-FINE N with 80 classes (COCO)"
    session = ort.InferenceSession(str(files["dynamic"]), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["images", "orig_target_sizes"]
    assert [o.name for o in session.get_outputs()] == ["labels", "boxes", "scores"]
    assert session.get_inputs()[0].shape == ["batch", 3, 640, 640]
    fixed = ort.InferenceSession(str(files["2"]), providers=["CPUExecutionProvider"])
    assert fixed.get_inputs()[0].shape == [2, 3, 640, 640]


def test_onnx_runtime_equals_pytorch_on_the_reference_vectors(exported):
    path, vectors, files = exported
    images = vectors["input"]
    sizes = vectors["orig_target_sizes"].astype(np.float32)
    with torch.inference_mode():
        model = fuse_backbone(load_dfine(path, "n", "coco"))
        logits, boxes = model(torch.from_numpy(images))
        ref_labels, ref_boxes, ref_scores = (t[0].numpy() for t in postprocess(logits, boxes, torch.from_numpy(sizes)))
    session = ort.InferenceSession(str(files["dynamic"]), providers=["CPUExecutionProvider"])
    labels, xyxy, scores = (o[0] for o in session.run(None, {"images": images, "orig_target_sizes": sizes}))
    # the parity tests' rule: pair the 300 outputs one to one (exact score ties reorder the top 300); boxes in
    # pixels of the 1280x720 original (the raw-box tolerance 1e-5 times 1280), scores 1e-4 (logits' 1e-4)
    cost = np.abs(ref_boxes[:, None] - xyxy[None]).sum(-1) + 1e3 * (ref_labels[:, None] != labels[None])
    rows, cols = linear_sum_assignment(cost)
    ok = (
        (np.abs(ref_boxes[rows] - xyxy[cols]).max(-1) <= 1e-5 * 1280)
        & (np.abs(ref_scores[rows] - scores[cols]) <= 1e-4)
        & (ref_labels[rows] == labels[cols])
    )
    assert ok.mean() >= 0.99, f"{int((~ok).sum())} of 300 outputs differ"
    np.testing.assert_allclose(np.sort(scores), np.sort(vectors["scores"][0]), atol=1e-3)  # the official vector


def test_detect_with_the_onnx_file_writes_the_pytorch_det_db(exported, tmp_path):
    path, _, files = exported
    scene = render_scene(tmp_path / "clip", frames=3, seed=2, size=(320, 180))
    dbs = {}
    for name, weights in (("pth", path), ("onnx", files["dynamic"]), ("fixed", files["2"])):
        dbs[name] = tmp_path / f"{name}.json"
        assert main(["detect", str(scene.video), "--detector", "dfine", "--weights", str(weights), "--sequence",
                     "clip", "--out", str(dbs[name]), "--device", "cpu"]) == 0  # fmt: skip
    reference = read_det_db(dbs["pth"])
    assert sum(len(v) for v in reference.values()) > 0
    for name in ("onnx", "fixed"):  # a 3-frame clip through a batch-2 file: the last batch padded
        got = read_det_db(dbs[name])
        assert sorted(got) == sorted(reference)
        for key, rows in reference.items():
            assert len(got[key]) == len(rows), (name, key)
            np.testing.assert_allclose(np.array(got[key]), np.array(rows), atol=0.011)  # 2-decimal det_db rounding


def test_bad_files_say_what_is_wrong(exported, tmp_path, capsys):
    path, _, files = exported
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a protobuf at all")
    assert main(["detect", "x.mp4", "--detector", "dfine", "--weights", str(junk), "--out", str(tmp_path / "a")]) == 2
    assert "not a readable ONNX file" in capsys.readouterr().err
    assert main(["export", "dfine", "--weights", str(files["2"]), "--onnx", str(tmp_path / "b.onnx")]) == 2
    assert "already an ONNX file" in capsys.readouterr().err
    assert main(["export", "dfine", "--weights", str(path), "--size", "l", "--onnx", str(tmp_path / "c.onnx")]) == 2
    assert "size l does not match" in capsys.readouterr().err and not (tmp_path / "c.onnx").exists()
    detector = OnnxDFINEDetector(files["dynamic"])
    assert detector.providers == ["CPUExecutionProvider"] and detector.input_size == 640 and detector.batch_size == 1


def test_the_api_reads_what_an_onnx_file_is_without_torch(exported, api, stored_run, tmp_path):  # noqa: F811
    """`POST /runs/{run}/detect` with an export's path: size and dataset filled in from its metadata (the API
    reads it with `onnx`, no torch, no ONNX Runtime); a file that is no export is a 422 naming it."""
    import shutil

    _, _, files = exported
    client, store, settings = api
    shutil.copyfile(files["dynamic"], settings.data_root / "dfine_n.onnx")
    (settings.data_root / "junk.onnx").write_bytes(b"junk")
    answer = client.post(f"/runs/{stored_run}/detect", json={"detector": "dfine", "weights": "dfine_n.onnx"})
    assert answer.status_code == 202, answer.text
    params = store.get(answer.json()["run"]).stages["detect"].params
    assert (params["size"], params["dataset"]) == ("n", "coco") and params["weights"].endswith("dfine_n.onnx")
    answer = client.post(f"/runs/{stored_run}/detect", json={"detector": "dfine", "weights": "junk.onnx"})
    assert answer.status_code == 422 and "not a readable ONNX file" in answer.json()["detail"], answer.text
