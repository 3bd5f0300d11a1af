"""Conversions: round trips keep boxes to 0.01 px and ids; TrackEval reads the layout we write."""

import json

import numpy as np
import pytest

from services.evaluator.metrics import trackeval_metrics
from services.gateway.cli import main
from shared.errors import InputError
from shared.formats.conversions import coco_to_det_db, det_db_to_mot, mot_to_det_db
from shared.formats.det_db import read_det_db
from shared.formats.labelstudio import read_labelstudio
from shared.formats.mot_txt import MotTable, read_mot


def test_labelstudio_to_mot_to_labelstudio(scene, tmp_path):
    size = f"{scene.size[0]}x{scene.size[1]}"
    assert main(["convert", "ls2mot", str(scene.gt_labelstudio), str(tmp_path / "mot"), "--sequence", "beach",
                 "--frame-size", size]) == 0  # fmt: skip
    gt_txt = tmp_path / "mot" / "beach" / "gt" / "gt.txt"
    info = (tmp_path / "mot" / "beach" / "seqinfo.ini").read_text()
    assert f"seqLength={scene.frames}" in info and f"imWidth={scene.size[0]}" in info
    assert json.loads((tmp_path / "mot" / "beach" / "gt" / "classes.json").read_text()) == {"player": 1, "ball": 2}
    mot = read_mot(gt_txt)
    np.testing.assert_allclose(mot.boxes, scene.gt.boxes, atol=0.01)
    assert mot.id.tolist() == scene.gt.id.tolist() and mot.cls.tolist() == scene.gt.cls.tolist()
    back_path = tmp_path / "back.json"
    assert main(["convert", "mot2ls", str(gt_txt), str(back_path), "--frame-size", size, "--as-annotations"]) == 0
    back = read_labelstudio(back_path).table
    np.testing.assert_allclose(back.boxes, scene.gt.boxes, atol=0.01)
    assert back.id.tolist() == scene.gt.id.tolist()


def test_frame_range_filter(scene, tmp_path):
    main(["convert", "ls2mot", str(scene.gt_labelstudio), str(tmp_path), "--sequence", "s", "--frame-range", "10:20"])
    frames = read_mot(tmp_path / "s" / "gt" / "gt.txt").frame
    assert frames.min() == 10 and frames.max() == 20


def test_tracks_as_prediction_pre_annotations(scene, tmp_path):
    path = tmp_path / "pre.json"
    assert main(["convert", "mot2ls", str(scene.gt_txt), str(path), "--frame-size", "640x360"]) == 0
    task = json.loads(path.read_text())[0]
    assert "predictions" in task and task["predictions"][0]["result"][0]["id"].startswith("track_")
    assert main(["convert", "mot2ls", str(scene.gt_txt), str(path)]) == 2  # no frame size


def test_det_db_to_mot_to_det_db(shared_dir, tmp_path):
    source = shared_dir / "samples" / "det_db_beach_volleyball.json"
    assert main(["convert", "detdb2mot", str(source), str(tmp_path / "d.txt")]) == 0
    assert main(["convert", "mot2detdb", str(tmp_path / "d.txt"), str(tmp_path / "db.json"),
                 "--sequence", "volleyball/test/test1", "--num-frames", "956"]) == 0  # fmt: skip
    assert json.loads((tmp_path / "db.json").read_text()) == json.loads(source.read_text())
    table = det_db_to_mot(read_det_db(source), "volleyball/test/test1")
    # the group's own MOT form of these detections, written with a higher score threshold
    reference = read_mot(shared_dir / "samples" / "dfine_detections_beach.txt")
    kept = table.select(np.round(table.conf, 4) >= reference.conf.min())  # their scores have 4 decimals

    # both files were rounded to 0.01 from the detector's raw floats, independently (one step apart at most),
    # and their row order inside a frame may differ: compare rows sorted by frame and position
    def rows(t):
        m = np.column_stack([t.frame, t.boxes])
        return m[np.lexsort((m[:, 2], m[:, 1], m[:, 0]))]

    assert len(kept) == len(reference)
    np.testing.assert_allclose(rows(kept), rows(reference), atol=0.0101)


def test_mot_to_det_db_keys_every_frame():
    table = MotTable.from_matrix([[2, 0, 1, 2, 3, 4, 0.5, -1, -1, -1]])
    db = mot_to_det_db(table, "s", 3)
    assert list(db) == ["s/img1/000001", "s/img1/000002", "s/img1/000003"]
    assert db["s/img1/000001"].shape == (0, 5) and db["s/img1/000002"].tolist() == [[1, 2, 3, 4, 0.5]]


def test_coco_detections_keyed_by_frame_or_listed(tmp_path):
    keyed = tmp_path / "keyed.json"
    keyed.write_text(json.dumps({"1": [{"bbox": [1, 2, 3, 4], "score": 0.9, "category_id": 0}],
                                 "3": [{"bbox": [5, 6, 7, 8], "score": 0.2, "category_id": 0}]}))  # fmt: skip
    db = coco_to_det_db(keyed, "s", score_threshold=0.3)
    assert db["s/img1/000001"].tolist() == [[1, 2, 3, 4, 0.9]] and len(db["s/img1/000003"]) == 0
    listed = tmp_path / "listed.json"
    listed.write_text(json.dumps([{"image_id": 2, "bbox": [1, 2, 3, 4], "score": 0.5}]))
    assert coco_to_det_db(listed, "s")["s/img1/000002"].tolist() == [[1, 2, 3, 4, 0.5]]
    listed.write_text(json.dumps([{"image_id": 2, "bbox": [1, 2, 3], "score": 0.5}]))
    with pytest.raises(InputError, match="bbox must be 4 numbers"):
        coco_to_det_db(listed, "s")


def test_trackeval_reads_our_layout_and_agrees(scene, tmp_path):
    trackeval = pytest.importorskip("trackeval")
    tracks = scene.gt.select(scene.gt.frame % 7 != 0)
    pred = tmp_path / "pred.txt"
    from shared.formats.mot_txt import write_mot

    write_mot(pred, MotTable(tracks.frame, tracks.id, tracks.boxes, tracks.conf, np.ones(len(tracks), int), tracks.vis))
    root = tmp_path / "te"
    assert main(["convert", "mot2trackeval", str(scene.gt_txt), str(root), "--tracks", str(pred),
                 "--sequence", "SEQ", "--num-frames", str(scene.frames)]) == 0  # fmt: skip
    config = {"GT_FOLDER": str(root / "gt" / "mot_challenge"),
              "TRACKERS_FOLDER": str(root / "trackers" / "mot_challenge"),
              "BENCHMARK": "MOTPIPE", "SPLIT_TO_EVAL": "train", "DO_PREPROC": False, "PRINT_CONFIG": False,
              "SEQMAP_FOLDER": str(root / "gt" / "mot_challenge" / "seqmaps")}  # fmt: skip
    evaluator = trackeval.Evaluator({"PRINT_RESULTS": False, "OUTPUT_SUMMARY": False, "OUTPUT_DETAILED": False,
                                     "PLOT_CURVES": False, "PRINT_CONFIG": False, "USE_PARALLEL": False})  # fmt: skip
    results, _ = evaluator.evaluate([trackeval.datasets.MotChallenge2DBox(config)],
                                    [trackeval.metrics.CLEAR({"PRINT_CONFIG": False})])  # fmt: skip
    theirs = results["MotChallenge2DBox"]["motpipe"]["COMBINED_SEQ"]["pedestrian"]["CLEAR"]
    gt_all_players = MotTable(scene.gt.frame, scene.gt.id, scene.gt.boxes, scene.gt.conf,
                              np.ones(len(scene.gt), int), scene.gt.vis)  # fmt: skip
    ours = trackeval_metrics(gt_all_players, read_mot(pred))
    assert theirs["MOTA"] == ours["MOTA"] and theirs["CLR_FN"] == ours["CLR_FN"] > 0
