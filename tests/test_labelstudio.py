import json

import numpy as np
import pytest

from shared.errors import InputError
from shared.formats.conversions import mot_to_labelstudio
from shared.formats.labelstudio import parse_labelstudio, read_labelstudio
from shared.formats.mot_txt import read_mot


def test_real_labelstudio_gt_matches_the_reference_conversion(shared_dir):
    gt = read_labelstudio(shared_dir / "samples" / "labelstudio_gt_demo.json")
    reference = read_mot(shared_dir / "reference" / "eval" / "user_demo" / "gt.txt")  # ids track_N -> N
    assert len(gt.table) == len(reference) == 800
    assert gt.track_ids["track_0"] == 0  # track_<N> keeps N, as in the group's loader
    ours = np.column_stack([gt.table.frame, gt.table.id, gt.table.boxes])
    theirs = np.column_stack([reference.frame, reference.id, reference.boxes])
    order = lambda m: m[np.lexsort((m[:, 1], m[:, 0]))]  # noqa: E731
    np.testing.assert_array_equal(order(ours), order(theirs))  # bit-exact


def _image_task(image, results, size_inside_value=False):
    out = []
    for rid, label, box in results:
        value = {"x": box[0], "y": box[1], "width": box[2], "height": box[3], "rectanglelabels": [label]}
        result = {"id": rid, "type": "rectanglelabels", "value": value}
        holder = value if size_inside_value else result
        holder.update(original_width=200, original_height=100)
        out.append(result)
    return {"data": {"image": image}, "annotations": [{"result": out}]}


def test_image_tasks_size_on_result_or_inside_value_and_frame_from_file_name():
    tasks = [
        _image_task("/data/upload/3/abc-frame_000012.jpg", [("Xy7", "player", (10, 20, 5, 10))]),
        _image_task("s/img1/000013.png", [("Xy7", "Ball", (50, 50, 1, 2))], size_inside_value=True),
    ]
    gt = parse_labelstudio(tasks)
    assert gt.table.frame.tolist() == [12, 13]
    assert gt.table.id.tolist() == [1, 1]
    assert gt.table.cls.tolist() == [1, 2]
    np.testing.assert_allclose(gt.table.boxes, [[20, 20, 10, 10], [100, 50, 2, 2]])


def test_video_task_keyframes_are_interpolated_like_label_studio():
    sequence = [
        {"frame": 1, "enabled": True, "x": 0, "y": 0, "width": 10, "height": 10, "rotation": 0, "time": 0},
        {
            "frame": 5,
            "enabled": False,
            "x": 40,
            "y": 0,
            "width": 10,
            "height": 10,
            "rotation": 0,
            "time": 0.2,
        },
        {
            "frame": 8,
            "enabled": True,
            "x": 50,
            "y": 50,
            "width": 10,
            "height": 10,
            "rotation": 0,
            "time": 0.3,
        },
    ]
    task = {
        "data": {"video": "clip.mp4"},
        "annotations": [
            {
                "result": [
                    {
                        "id": "a",
                        "type": "videorectangle",
                        "value": {"sequence": sequence, "labels": ["player"], "framesCount": 10},
                    }
                ]
            }
        ],
    }
    gt = parse_labelstudio([task], frame_size=(100, 100))
    assert gt.table.frame.tolist() == [
        1,
        2,
        3,
        4,
        5,
        8,
        9,
        10,
    ]  # gone after the disabled keyframe, held to the end
    np.testing.assert_allclose(gt.table.boxes[:5, 0], [0, 10, 20, 30, 40])
    np.testing.assert_allclose(gt.table.boxes[5:, :2], [[50, 50]] * 3)


def test_video_task_without_frame_size_is_refused():
    task = {
        "annotations": [
            {"result": [{"id": "a", "type": "videorectangle", "value": {"sequence": [], "labels": ["player"]}}]}
        ]
    }
    with pytest.raises(InputError, match="original_width"):
        parse_labelstudio([task])


@pytest.mark.parametrize(
    ("tasks", "needle"),
    [
        ([_image_task("f_000001.jpg", [("a", "referee", (1, 1, 1, 1))])], "unknown label 'referee'"),
        ([_image_task("nonumber.jpg", [("a", "player", (1, 1, 1, 1))])], "no frame number"),
        (
            [_image_task("f_000001.jpg", [("a", "player", (1, 1, 1, 1)), ("a", "player", (2, 2, 1, 1))])],
            "appears twice",
        ),
        ([_image_task("f_000001.jpg", [("a", "player", (1, 1, -1, 1))])], "negative box size"),
        ([_image_task("f_000001.jpg", [("a", "player", (1, float("nan"), 1, 1))])], "field 'y'"),
        ({"not": "tasks"} and "text", "expected a list of tasks"),
    ],
)
def test_malformed_labelstudio_names_task_and_field(tasks, needle):
    with pytest.raises(InputError) as info:
        parse_labelstudio(tasks, "gt.json")
    assert "gt.json" in str(info.value) and needle in str(info.value)


def test_write_then_read_round_trip(scene, tmp_path):
    path = tmp_path / "ls.json"
    mot_to_labelstudio(scene.gt, path, scene.size, as_predictions=False)
    back = read_labelstudio(path)
    np.testing.assert_allclose(back.table.boxes, scene.gt.boxes, atol=1e-9)
    assert back.table.cls.tolist() == scene.gt.cls.tolist()
    assert json.loads(path.read_text())[0]["annotations"][0]["result"][0]["original_width"] == scene.size[0]


def test_track_ids_survive_and_regions_drawn_in_the_editor_get_new_ones():
    """A mix in one export: `track_<n>` keeps n; any other region id gets an id above every `track_<n>` of the
    export and every id the ground truth it joins already has (`taken`); `data["frame"]` names the frame."""
    first = _image_task("/data/upload/3/9f2c-match_000012.jpg", [("track_7", "player", (10, 10, 5, 5)),
                                                                  ("Xy3kP", "ball", (50, 50, 2, 2))])  # fmt: skip
    first["data"]["frame"] = 40  # what the file name says is overruled by the task's frame
    second = _image_task("/data/upload/3/1a2b-match_000013.jpg", [("track_2", "player", (12, 10, 5, 5)),
                                                                   ("Qw9", "player", (70, 20, 5, 5))])  # fmt: skip
    tasks = [first, second]
    gt = parse_labelstudio(tasks, taken={1, 2, 30})
    assert gt.track_ids == {"track_7": 7, "Xy3kP": 31, "track_2": 2, "Qw9": 32}
    assert sorted(zip(gt.table.frame.tolist(), gt.table.id.tolist(), strict=True)) == [(13, 2), (13, 32), (40, 7),
                                                                                     (40, 31)]  # fmt: skip
    assert parse_labelstudio(tasks).track_ids["Xy3kP"] == 8  # above the export's own track_7
