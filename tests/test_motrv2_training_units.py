"""Small pieces of the MOTRv2 training core: box arithmetic, clip sampling, transforms, class-count changes."""

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from services.tracker.motrv2.config import MOTRv2Config
from services.tracker.motrv2.training.criterion import (
    FrameTargets,
    MatcherCosts,
    generalized_box_iou,
    hungarian_match,
    matched_iou,
)
from services.tracker.motrv2.training.data import ClipDataset, DataConfig, SequenceData, select_gt
from services.tracker.motrv2.training.optim import apply_trainable
from services.tracker.motrv2.training.transforms import crop, hflip, target_size
from services.tracker.motrv2.training.weights import PRIOR_BIAS, build_from_weights, fresh_model
from shared.errors import InputError
from shared.formats.mot_txt import MotTable

SMALL = MOTRv2Config(num_classes=1, enc_layers=1, dec_layers=2, dim_feedforward=256)


def test_zero_union_boxes_have_iou_zero_and_finite_gradients():
    a = torch.tensor([[0.5, 0.5, 0.5, 0.5], [0.1, 0.1, 0.3, 0.3]], requires_grad=True)
    b = torch.tensor([[0.5, 0.5, 0.5, 0.5], [0.1, 0.1, 0.3, 0.3]])
    iou = matched_iou(a, b)
    assert iou.tolist() == [0.0, 1.0]
    giou = generalized_box_iou(a, b)
    assert torch.isfinite(giou).all() and giou[0, 0].item() == 0.0
    (iou.sum() + giou.sum()).backward()
    assert torch.isfinite(a.grad).all()


def test_matcher_handles_empty_sides():
    logits, boxes = torch.zeros(3, 1), torch.rand(3, 4)
    none = FrameTargets(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long))
    rows, cols = hungarian_match(logits, boxes, none, MatcherCosts())
    assert rows.numel() == cols.numel() == 0
    one = FrameTargets(boxes[1:2].clone(), torch.zeros(1, dtype=torch.long), torch.ones(1, dtype=torch.long))
    rows, cols = hungarian_match(logits, boxes, one, MatcherCosts())
    assert rows.tolist() == [1] and cols.tolist() == [0]


def _sequence(frames: int) -> SequenceData:
    rows = np.array([[f, 1, 10, 10, 20, 40, 1, 1, 1, -1] for f in range(1, frames + 1)], dtype=float)
    return SequenceData("s", {f: Path(f"{f:06d}.png") for f in range(1, frames + 1)}, MotTable.from_matrix(rows), {})


def test_every_clip_start_that_fits_is_used():
    assert ClipDataset([_sequence(3)], DataConfig(sampler_length=3, sample_interval=0)).indices == [(0, 1)]
    assert len(ClipDataset([_sequence(10)], DataConfig(sampler_length=3))) == 8
    with pytest.raises(InputError, match="no clip of 4 frames"):
        ClipDataset([_sequence(3)], DataConfig(sampler_length=4))


def test_sample_step_is_drawn_from_one_to_interval_plus_one():
    data = ClipDataset([_sequence(100)], DataConfig(sampler_length=2, sample_interval=2))
    rng = random.Random(0)
    steps = {data.frame_numbers(0, rng)[1] - 1 for _ in range(200)}
    assert steps == {1, 2, 3}
    consecutive = ClipDataset([_sequence(10)], DataConfig(sampler_length=3, sample_interval=0))
    assert consecutive.frame_numbers(7, rng) == [8, 9, 10]
    # frames past the last ground-truth frame are clamped to it (official)
    wide = ClipDataset([_sequence(10)], DataConfig(sampler_length=3, sample_interval=20))
    assert max(wide.frame_numbers(0, random.Random(1))) <= 10


def test_ground_truth_classes_follow_the_official_rules():
    rows = np.array([[1, 1, 0, 0, 5, 5, 1, 1, 1, -1], [1, 2, 0, 0, 5, 5, 1, 2, 1, -1],
                     [1, 3, 0, 0, 5, 5, 0, 1, 1, -1], [1, 4, 0, 0, 5, 5, 1, 3, 1, -1]], dtype=float)  # fmt: skip
    table = MotTable.from_matrix(rows)
    one = select_gt(table, 1, "gt.txt")  # mark 0 skipped, label 3 filtered, all class 0
    assert one.id.tolist() == [1, 2] and one.cls.tolist() == [0, 0]
    with pytest.raises(InputError, match="label 3 in frame 1"):
        select_gt(table, 2, "gt.txt")
    two = select_gt(MotTable.from_matrix(rows[:2]), 2, "gt.txt")
    assert two.cls.tolist() == [0, 1]


def test_transforms_move_boxes_with_the_frame():
    frame = np.zeros((100, 200, 3), np.uint8)
    boxes = [np.array([[10.0, 20.0, 50.0, 60.0]])]
    _, flipped = hflip([frame], boxes)
    assert flipped[0].tolist() == [[150.0, 20.0, 190.0, 60.0]]
    frames, cropped, keeps = crop([frame], [np.array([[10.0, 20.0, 50.0, 60.0], [0, 0, 5, 5]])], 30, 20, 50, 100)
    assert frames[0].shape == (50, 100, 3)
    assert cropped[0].tolist() == [[0.0, 0.0, 30.0, 30.0]] and keeps[0].tolist() == [True, False]
    assert target_size(1080, 1920, 800, 1536) == (800, 1422)
    assert target_size(1080, 1920, 992, 1536) == (864, 1536)  # the longer side is capped


def test_one_class_checkpoint_into_a_player_and_ball_model(tmp_path):
    source = fresh_model(SMALL, seed=3)
    torch.save({"model": source.state_dict()}, tmp_path / "one.pth")
    model, report = build_from_weights(tmp_path / "one.pth", num_classes=2)
    assert "1 -> 2" in report
    for i in range(SMALL.dec_layers):
        head, old = model.class_embed[i], source.class_embed[i]
        assert torch.equal(head.weight[0], old.weight[0]) and head.bias[0] == old.bias[0]
        assert head.bias[1].item() == pytest.approx(PRIOR_BIAS)
    assert torch.equal(model.transformer.level_embed, source.transformer.level_embed)
    same, report = build_from_weights(tmp_path / "one.pth")
    assert same.cfg.num_classes == 1 and "->" not in report


def test_unknown_strategy_and_keys_that_match_nothing_are_refused():
    model = fresh_model(SMALL)
    with pytest.raises(InputError, match="unknown strategy 'bold'"):
        apply_trainable(model, "bold")
    with pytest.raises(InputError, match="match no parameter"):
        apply_trainable(model, keys=["query_interaction"])
    custom = apply_trainable(model, keys=["track_embed.norm"])
    assert custom.strategy == "custom" and all("track_embed.norm" in n for n in custom.names)


def test_a_running_job_without_heartbeat_or_process_reads_as_failed(tmp_path):
    from datetime import timedelta

    from services.trainer.jobs import read_job, write_job
    from shared.schemas import JobRecord, StageState, utcnow

    def job(worker: dict) -> JobRecord:
        write_job(tmp_path, JobRecord(job="j", state=StageState.running, planned_epochs=5, worker=worker))
        return read_job(tmp_path)

    old = (utcnow() - timedelta(minutes=30)).isoformat()
    assert "no heartbeat from gpu-node-7" in job({"host": "gpu-node-7", "pid": 1, "heartbeat": old}).error
    assert job({"host": "gpu-node-7", "pid": 1, "heartbeat": utcnow().isoformat()}).state == "running"
    import socket
    import subprocess

    gone = subprocess.Popen(["true"])
    gone.wait()
    record = job({"host": socket.gethostname(), "pid": gone.pid, "heartbeat": utcnow().isoformat()})
    assert record.state == "failed" and f"pid {gone.pid}" in record.error and "--resume" in record.error


def test_each_augmentation_switches_off_on_its_own():
    import random as stdlib_random

    from services.tracker.motrv2.training.transforms import AugmentConfig, augment

    frame = (np.arange(60 * 80 * 3) % 251).astype(np.uint8).reshape(60, 80, 3)
    boxes = [np.array([[10.0, 20.0, 30.0, 40.0]])]
    only_flip = AugmentConfig(flip=True, resize_crop=False, hsv=False)
    flipped = {augment([frame], boxes, only_flip, stdlib_random.Random(s), np.random.default_rng(s))[1][0][0, 0]
               for s in range(20)}  # fmt: skip
    assert flipped == {10.0, 50.0}  # left edge as is, or mirrored (80 - 30)
    frames, out, _ = augment([frame], boxes, AugmentConfig(flip=False, resize_crop=False, hsv=False),
                             stdlib_random.Random(0), np.random.default_rng(0))  # fmt: skip
    assert np.array_equal(frames[0], frame) and np.array_equal(out[0], boxes[0])
    hsv_only = AugmentConfig(flip=False, resize_crop=False, hsv=True)
    changed = [not np.array_equal(augment([frame], boxes, hsv_only, stdlib_random.Random(s),
                                          np.random.default_rng(s))[0][0], frame) for s in range(10)]  # fmt: skip
    assert any(changed)
