"""Overlay videos: right frame count and size, boxes drawn where the ground truth says."""

import av
import numpy as np

from services.evaluator.overlay import GT_COLOUR, id_colour, render_overlay, score_colour
from services.gateway.cli import main


def decoded_frames(path):
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        return [f.to_ndarray(format="bgr24") for f in container.decode(stream)]


def near(pixel, colour, tolerance=70.0) -> bool:
    return float(np.linalg.norm(pixel.astype(float) - np.array(colour, float))) < tolerance


def test_ground_truth_boxes_are_drawn_where_the_ground_truth_says(scene, tmp_path):
    out = tmp_path / "overlay.mp4"
    assert render_overlay(scene.video, out, gt=scene.gt) == scene.frames
    frames = decoded_frames(out)
    assert len(frames) == scene.frames and frames[0].shape == (scene.size[1], scene.size[0], 3)
    hits = checked = 0
    for frame in (5, 30, 55):
        image = frames[frame - 1]
        for i in np.flatnonzero((scene.gt.frame == frame) & (scene.gt.cls == 1)):
            x, y, w, h = (int(round(v)) for v in scene.gt.boxes[i])
            # the middle of the left edge is outlined; a point a quarter inside the box is not
            checked += 1
            hits += near(image[y + h // 2, x], GT_COLOUR)
            assert not near(image[y + h // 4, x + w // 4], GT_COLOUR)
    assert hits >= 0.9 * checked  # an occluding player may cover a few edges


def test_all_layers_through_the_cli(scene, tmp_path):
    from services.detector.engine import run_detection, write_detections
    from services.detector.motion import MotionDetector
    from shared.frames import open_frames
    from shared.schemas import DetectOptions

    db = tmp_path / "db.json"
    write_detections(run_detection(open_frames(scene.video), MotionDetector(), DetectOptions(sequence="s")), db)
    out = tmp_path / "all.mp4"
    assert main(["render", str(scene.video), "--out", str(out), "--gt", str(scene.gt_labelstudio),
                 "--det-db", str(db), "--tracks", str(scene.gt_txt)]) == 0  # fmt: skip
    assert len(decoded_frames(out)) == scene.frames
    assert main(["render", str(scene.video), "--out", str(out)]) == 2  # no layer


def test_colours():
    assert (
        score_colour(0.9) == (0, 200, 0) and score_colour(0.6) == (0, 220, 255) and score_colour(0.3) == (0, 140, 255)
    )
    assert id_colour(3) == id_colour(3) and id_colour(3) != id_colour(4)
