"""Overlay videos: right frame count and size, boxes drawn where the ground truth says, readable on sand and
indoor floors (labels on contrasting tags, a dark edge under every line), a legend and the frame number."""

import av
import numpy as np

from services.evaluator.overlay import GT_COLOUR, id_colour, render_overlay, score_colour, text_colour
from services.gateway.cli import main
from shared.contrast import contrast as wcag_contrast


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


def contrast(a, b) -> float:  # of two BGR colours
    return wcag_contrast([c / 255 for c in a[::-1]], [c / 255 for c in b[::-1]])


def test_every_label_colour_gets_text_that_reads_on_it():
    """WCAG AA (4.5:1) for the text on every tag the overlay draws: ids (light green, yellow included), scores
    and ground truth; and every line's dark edge stands out from sand and from a pale or a dark indoor floor."""
    tags = [GT_COLOUR, *(score_colour(s) for s in (0.9, 0.6, 0.3)), *(id_colour(i) for i in range(1, 300))]
    assert min(contrast(c, text_colour(c)) for c in tags) >= 4.5
    sand, maple, blue_floor = (150, 200, 225), (120, 180, 220), (140, 90, 40)  # BGR
    assert min(contrast((0, 0, 0), floor) for floor in (sand, maple)) >= 7
    assert text_colour((0, 220, 255)) == (0, 0, 0) and text_colour(blue_floor) == (255, 255, 255)


def test_the_legend_names_the_layers_drawn_and_the_frame_number_is_on_a_dark_tag(scene, tmp_path):
    out = tmp_path / "overlay.mp4"
    render_overlay(scene.video, out, gt=scene.gt, tracks=scene.gt)
    image = decoded_frames(out)[0]
    corner = image[:80, -260:]  # the legend: one swatch per layer drawn, nothing for the absent detections
    assert any(near(p, GT_COLOUR, 40) for p in corner.reshape(-1, 3))
    assert not any(near(p, score_colour(0.3), 40) for p in corner.reshape(-1, 3))
    tag = image[10:30, 10:40].reshape(-1, 3).astype(float)
    assert np.median(tag.sum(axis=1)) < 3 * 60  # dark behind the white "frame 1" text, whatever the scene
    x, y, w, h = (int(round(v)) for v in scene.gt.boxes[np.flatnonzero(scene.gt.frame == 1)[0]])
    assert near(image[y + h // 2, x - 3], (0, 0, 0), 90)  # the dark edge outside the magenta outline
