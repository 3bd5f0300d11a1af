"""D-FINE fine-tuning through `motpipe train dfine`: the one-step contract equals the official float64
vector, a small model overfits a handful of synthetic frames and its checkpoint detects through
`motpipe detect`, class-aware initialisation starts new classes from their source rows, a killed job is
failed and resumes to the uninterrupted weights, bad input is refused naming the problem."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from services.detector.dfine.configs import dfine_config
from services.detector.dfine.model import DFINE
from services.detector.dfine.training.data import from_coco, from_ground_truth
from services.detector.dfine.training.weights import PRIOR_BIAS, build_from_weights, parse_class_map
from services.evaluator.ground_truth import read_ground_truth
from services.gateway.cli import main
from services.trainer.dfine_job import gt_class_map
from services.trainer.jobs import read_job
from shared.formats.conversions import mot_to_labelstudio
from shared.formats.mot_txt import read_mot
from shared.synth import render_still_frames
from tests.test_dfine_train_parity import reference_model

REPO = Path(__file__).resolve().parents[1]
CLASSES = 'player=person,ball="sports ball"'


@pytest.fixture(scope="module")
def stills(tmp_path_factory):
    """Six synthetic 256x256 stills (three players and a ball each, exact gt.txt) and an N/COCO checkpoint
    of a default-initialised model, saved as the official layout."""
    base = render_still_frames(tmp_path_factory.mktemp("dfine") / "stills", frames=6, size=256, seed=0)
    torch.manual_seed(0)
    torch.save({"model": DFINE(dfine_config("n", "coco")).state_dict()}, base / "init.pth")
    return base


def small_args(base: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "dfine", "--frames", str(base / "frames"), "--gt", str(base / "gt.txt"), "--weights",
            str(base / "init.pth"), "--size", "n", "--dataset", "coco", "--classes", CLASSES, "--out", str(out),
            "--img-size", "256", "--warmup-steps", "10", "--batch-size", "3", "--no-augment", "--device", "cpu",
            "--threads", "2", *extra]  # fmt: skip


def _run_cli(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "services.gateway.cli", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip


def test_one_step_through_the_cli_equals_the_official_float64_vector(shared_dir, param_fill, tmp_path):
    """Files written from the vector's inputs (PNG images, COCO json, INIT.pth); one step in float64."""
    folder = shared_dir / "reference" / "dfine_train"
    vectors, meta = (
        np.load(folder / "vectors_train_n_f64.npz"),
        json.loads((folder / "vectors_train_n_f64.json").read_text()),
    )
    torch.save({"model": reference_model(param_fill, vectors, meta).float().state_dict()}, tmp_path / "INIT.pth")
    (tmp_path / "images").mkdir()
    images, annotations = [], []
    for i, target in enumerate(meta["targets"]):
        Image.fromarray(param_fill.make_image(640, 640, seed=100 + i)).save(tmp_path / "images" / f"{i}.png")
        images.append({"id": i, "file_name": f"{i}.png", "width": 640, "height": 640})
        for (cx, cy, w, h), label in zip(target["boxes_cxcywh"], target["labels"], strict=True):
            box = [(cx - w / 2) * 640, (cy - h / 2) * 640, w * 640, h * 640]
            annotations.append({"id": len(annotations), "image_id": i, "bbox": box, "category_id": label, "iscrowd": 0})
    (tmp_path / "ann.json").write_text(json.dumps({"images": images, "annotations": annotations}))
    code = main(["train", "dfine", "--coco", str(tmp_path / "ann.json"), "--images", str(tmp_path / "images"),
                 "--weights", str(tmp_path / "INIT.pth"), "--size", "n", "--dataset", "coco", "--out",
                 str(tmp_path / "job"), "--batch-size", "2", "--max-steps", "1", "--no-augment", "--no-denoising",
                 "--dtype", "float64", "--log-json", str(tmp_path / "log.json"), "--device", "cpu"])  # fmt: skip
    assert code == 0
    lines = (tmp_path / "log.json").read_text().splitlines()
    assert len(lines) == 1 and " " not in lines[0]  # compact JSON Lines, the first line is step 1
    logged = json.loads(lines[0])
    assert [k for k in logged if k.startswith("loss_")] == list(meta["losses"])
    for key, expected in meta["losses"].items():
        assert logged[key] == pytest.approx(expected, rel=1e-7, abs=4e-10), key
    assert logged["loss"] == pytest.approx(meta["loss_total"], rel=1e-7)
    assert logged["grad_norm"] == pytest.approx(meta["grad_total_norm_pre_clip"], rel=1e-9)
    record = read_job(tmp_path / "job")
    assert record.state == "succeeded" and record.model == "dfine" and record.progress.done == 1
    checkpoint = torch.load(tmp_path / "job" / "checkpoint.pth", weights_only=True)
    assert {"model", "ema", "optimizer", "lr_scheduler", "lr_warmup_scheduler", "last_epoch"} <= set(checkpoint)
    assert checkpoint["model"]["decoder.denoising_class_embed.weight"].dtype == torch.float64  # kept (strict load)
    names = list(vectors["names/state"])
    for name in meta["named"]:  # the spec's listed parameters after the optimizer step and EMA update
        i = names.index(name)
        for got, ref in ((checkpoint["model"][name], vectors["model_after/sum_abs"][i]),
                         (checkpoint["ema"]["module"][name], vectors["ema_after/sum_abs"][i])):  # fmt: skip
            assert [got.sum().item(), got.abs().sum().item()] == pytest.approx(list(ref), rel=1e-9, abs=1e-9), name


def test_small_model_overfits_synthetic_frames_and_its_checkpoint_detects(stills, tmp_path, capsys):
    out = tmp_path / "job"
    # mAP50 per epoch on this machine: 0 until epoch 17, 0.60 at 23, 0.91 at 29 (30 epochs: a 6-epoch margin)
    assert main(small_args(stills, out, "--epochs", "30", "--val", "frames")) == 0
    record = read_job(out)
    assert record.state == "succeeded" and record.finished_epochs == 30
    assert "validation runs on the training data" in " ".join(record.notes)
    last = record.epochs[-1].val
    assert last["mAP50"] >= 0.5, [e.val["mAP50"] for e in record.epochs]
    assert {"player/mAP50", "ball/recall@0.5", "ball/recall@0.3", "player/AR"} <= set(last)
    assert (out / "plots" / "val.png").is_file() and (out / "plots" / "loss.png").is_file()
    first, final = record.epochs[0].losses["loss"], record.epochs[-1].losses["loss"]
    assert final < 0.5 * first

    capsys.readouterr()
    detections = tmp_path / "det.txt"
    assert main(["detect", str(stills / "frames"), "--detector", "dfine", "--weights", str(out / "checkpoint.pth"),
                 "--size", "n", "--dataset", "coco", "--out", str(detections), "--format", "mot",
                 "--score-threshold", "0.3", "--device", "cpu"]) == 0  # fmt: skip
    assert "classes: 0 player, 1 ball" in capsys.readouterr().err
    rows = np.loadtxt(detections, delimiter=",", ndmin=2)
    gt = np.loadtxt(stills / "gt.txt", delimiter=",", ndmin=2)
    players = gt[gt[:, 7] == 1]
    found = 0
    for frame, _, x, y, w, h, *_ in players:
        mine = rows[(rows[:, 0] == frame) & (rows[:, 7] == 0)]
        ious = [_iou((x, y, w, h), tuple(r[2:6])) for r in mine]
        found += bool(ious) and max(ious) >= 0.5
    assert found / len(players) >= 0.5, f"{found} of {len(players)} players found"
    # the fine-tune's own class names filter detections
    balls = tmp_path / "balls.txt"
    assert main(["detect", str(stills / "frames"), "--detector", "dfine", "--weights", str(out / "checkpoint.pth"),
                 "--size", "n", "--out", str(balls), "--format", "mot", "--classes", "ball",
                 "--device", "cpu"]) == 0  # fmt: skip
    only = np.loadtxt(balls, delimiter=",", ndmin=2)
    assert len(only) and set(only[:, 7]) == {1} and len(only) == int((rows[:, 7] == 1).sum())


def _iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    h = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    return w * h / (aw * ah + bw * bh - w * h)


def test_class_aware_init_starts_new_classes_from_their_source_rows(stills):
    source = DFINE(dfine_config("n", "coco"))
    source.load_state_dict(torch.load(stills / "init.pth", weights_only=True)["model"])
    init = build_from_weights(stills / "init.pth", "n", "coco", CLASSES)
    assert init.classes == ["player", "ball"] and init.source == {"player": 0, "ball": 32}
    heads = [("enc_score_head", source.decoder.enc_score_head, init.model.decoder.enc_score_head)]
    pairs = zip(source.decoder.dec_score_head, init.model.decoder.dec_score_head, strict=True)
    heads += [(f"dec_score_head.{i}", a, b) for i, (a, b) in enumerate(pairs)]
    for name, old, new in heads:
        assert torch.equal(new.weight, old.weight[[0, 32]]), name
        assert torch.equal(new.bias, old.bias[[0, 32]]), name
    old_embed, new_embed = source.decoder.denoising_class_embed.weight, init.model.decoder.denoising_class_embed.weight
    assert torch.equal(new_embed, torch.cat([old_embed[[0, 32]], old_embed[-1:]]))
    # everything that does not depend on the class count loads unchanged
    assert torch.equal(init.model.decoder.enc_bbox_head.layers[0].weight, source.decoder.enc_bbox_head.layers[0].weight)
    assert parse_class_map("player=person,ball=156", "obj365", []) == [("player", 1), ("ball", 156)]
    fresh = build_from_weights(stills / "init.pth", "n", "coco", "player=0,ball=32", reinit=True)
    assert torch.all(fresh.model.decoder.enc_score_head.bias == torch.tensor(PRIOR_BIAS, dtype=torch.float32))
    assert not torch.equal(fresh.model.decoder.enc_score_head.weight, init.model.decoder.enc_score_head.weight)


def test_killed_job_is_failed_and_resume_gives_the_uninterrupted_weights(stills, tmp_path):
    plan = ("--epochs", "3")
    reference = _run_cli(small_args(stills, tmp_path / "reference", *plan))
    assert reference.wait(timeout=600) == 0, reference.stdout.read()
    out = tmp_path / "killed"
    victim = _run_cli(small_args(stills, out, *plan))
    deadline = time.time() + 300
    while time.time() < deadline:  # kill in epoch 1, once epoch 0's checkpoint is durable
        if (out / "job.json").is_file() and read_job(out).finished_epochs == 1:
            break
        time.sleep(0.1)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    record = read_job(out)
    assert record.state == "failed" and "ended without finishing" in record.error, record
    resumed = _run_cli(small_args(stills, out, *plan, "--resume"))
    assert resumed.wait(timeout=600) == 0, resumed.stdout.read()
    record = read_job(out)
    assert record.state == "succeeded" and [e.epoch for e in record.epochs] == [0, 1, 2]
    got = torch.load(out / "checkpoint.pth", weights_only=True)
    want = torch.load(tmp_path / "reference" / "checkpoint.pth", weights_only=True)
    assert got["last_epoch"] == want["last_epoch"] == 2 and got["ema"]["updates"] == want["ema"]["updates"] == 6
    assert all(torch.equal(got["model"][k], want["model"][k]) for k in want["model"])
    assert all(torch.equal(got["ema"]["module"][k], want["ema"]["module"][k]) for k in want["model"])


def _refused(capsys, args: list[str], *words: str) -> None:
    code = main(args)
    message = capsys.readouterr().err.replace("\n", "")
    assert code == 2, message
    for word in words:
        assert word in message, message


def test_bad_input_is_refused_naming_the_problem(stills, tmp_path, capsys):
    out = tmp_path / "out"
    good = (stills / "gt.txt").read_text()
    gt = tmp_path / "gt.txt"
    gt.write_text(good + "2,7,400,300,20,20,1,1,1\n")  # wholly outside the 256x256 frame
    _refused(capsys, [*small_args(stills, out), "--gt", str(gt)], "gt.txt frame 2", "wholly outside")
    gt.write_text("")
    _refused(capsys, [*small_args(stills, out), "--gt", str(gt)], "gt.txt", "empty")
    _refused(capsys, [*small_args(stills, out), "--classes", "player=person,ball=football"], "football", "classes")
    _refused(capsys, [*small_args(stills, out), "--classes", "ball=person,player=person"], "ball", "order")
    torch.save({"model": DFINE(dfine_config("s", "coco")).state_dict()}, tmp_path / "s.pth")
    _refused(
        capsys,
        [*small_args(stills, out), "--weights", str(tmp_path / "s.pth")],
        "s.pth",
        "this checkpoint is D-FINE S with 80 classes (COCO); size n does not match",
    )
    _refused(capsys, [*small_args(stills, out), "--img-size", "250"], "img_size")
    # a box partly outside is clipped as the official loader clips it, and trains
    gt.write_text(good + "3,8,240,-10,40,30,1,1,1\n")
    assert main([*small_args(stills, out), "--gt", str(gt), "--max-steps", "1"]) == 0
    assert read_job(out).state == "succeeded"


def test_label_studio_ground_truth_sparse_frames_and_annotated_empty_frames(stills, tmp_path):
    """Only annotated frames are samples; frames marked annotated-empty join without boxes; a Label Studio
    export gives the same samples as the MOT file it was made from."""
    gt = read_mot(stills / "gt.txt")
    sparse = gt.select(np.isin(gt.frame, [2, 5]))
    class_of = gt_class_map(["player", "ball"])
    found = from_ground_truth(stills / "frames", sparse, "gt.txt", class_of, tmp_path, {6})
    assert [(s.frame, len(s.boxes)) for s in found.samples] == [(2, 4), (5, 4), (6, 0)]
    assert sorted(found.samples[0].labels.tolist()) == [0, 0, 0, 1]
    mot_to_labelstudio(gt, tmp_path / "gt.json", (256, 256), as_predictions=False)
    _, from_json = read_ground_truth(tmp_path / "gt.json")
    via_json = from_ground_truth(stills / "frames", from_json, "gt.json", class_of, tmp_path).samples
    via_mot = from_ground_truth(stills / "frames", gt, "gt.txt", class_of, tmp_path).samples
    assert len(via_json) == len(via_mot) == 6
    for a, b in zip(via_json, via_mot, strict=True):
        np.testing.assert_allclose(a.boxes, b.boxes, atol=0.01)
        assert a.labels.tolist() == b.labels.tolist()
    out = tmp_path / "job"
    assert main([*small_args(stills, out), "--gt", str(tmp_path / "gt.json"), "--max-steps", "1"]) == 0
    assert read_job(out).data["train_samples"] == 6


def test_coco_json_category_ids_and_remap(stills, tmp_path, capsys):
    gt = read_mot(stills / "gt.txt")
    images = [{"id": f, "file_name": f"{f:06d}.png"} for f in range(1, 7)]
    annotations = [{"id": i, "image_id": int(f), "bbox": list(map(float, box)), "category_id": 1 if c == 1 else 37}
                   for i, (f, box, c) in enumerate(zip(gt.frame, gt.boxes, gt.cls, strict=True))]  # fmt: skip
    annotations.append({"id": 99, "image_id": 1, "bbox": [0, 0, 50, 50], "category_id": 1, "iscrowd": 1})
    (tmp_path / "ann.json").write_text(json.dumps({"images": images, "annotations": annotations}))
    found = from_coco(tmp_path / "ann.json", stills / "frames", remap_mscoco=True, num_classes=80)
    assert len(found.samples) == 6 and sorted(set(np.concatenate([s.labels for s in found.samples]))) == [0, 32]
    assert all(len(s.boxes) == 4 for s in found.samples)  # the crowd box is dropped
    coco = ["train", "dfine", "--coco", str(tmp_path / "ann.json"), "--images", str(stills / "frames"), "--weights",
            str(stills / "init.pth"), "--size", "n", "--dataset", "coco", "--out", str(tmp_path / "job"),
            "--img-size", "256", "--batch-size", "3", "--no-augment", "--max-steps", "1"]  # fmt: skip
    _refused(capsys, [*coco, "--classes", CLASSES], "category_id 37", "0..1")
    assert main([*coco, "--remap-mscoco"]) == 0
    assert read_job(tmp_path / "job").state == "succeeded"


def test_autocast_path_trains_and_saves(stills, tmp_path):
    """The AMP code path (bf16 autocast on a CPU, float16 + GradScaler on CUDA), criterion outside it."""
    out = tmp_path / "amp"
    assert main([*small_args(stills, out), "--autocast", "--max-steps", "2"]) == 0
    record = read_job(out)
    assert record.state == "succeeded" and record.progress.done == 2
    logged = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert all(np.isfinite(entry["loss"]) for entry in logged)


def test_torchrun_two_gloo_processes_through_the_slurm_template(stills, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "FRAMES": str(stills / "frames"), "GT": str(stills / "gt.txt"),
           "WEIGHTS": str(stills / "init.pth"), "OUT": str(out), "GPUS": "2", "OMP_NUM_THREADS": "1",
           "MOTPIPE_DDP_BACKEND": "gloo", "MOTPIPE": str(Path(sys.executable).parent / "motpipe")}  # fmt: skip
    done = subprocess.run(["bash", str(REPO / "deploy" / "slurm" / "train_dfine.sbatch"), "--size", "n", "--dataset",
                           "coco", "--classes", CLASSES, "--img-size", "256", "--batch-size", "2", "--no-augment",
                           "--max-steps", "2", "--device", "cpu"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    record = read_job(out)
    assert record.state == "succeeded" and record.progress.done == 2
    assert record.data["train_samples"] == 6  # the data set; each rank takes its share of every epoch
    crashed = subprocess.run(["bash", str(REPO / "deploy" / "slurm" / "train_dfine.sbatch"), "--size", "s"],
                             cwd=REPO, env={**env, "GPUS": "1", "OUT": str(tmp_path / "crash")},
                             capture_output=True, text=True, timeout=300)  # fmt: skip
    assert crashed.returncode != 0 and "does not match" in crashed.stderr.replace("\n", " ")


def test_loader_workers_train_the_same_weights_as_loading_in_process(stills, tmp_path):
    """Augmentation and denoising on: each sample's draws come from (seed, epoch, position), so two loader
    processes give the weights that loading in the training process gives (and resume stays exact)."""
    outs = []
    for workers in ("0", "2"):
        out = tmp_path / f"workers{workers}"
        args = [a for a in small_args(stills, out, "--max-steps", "2", "--workers", workers) if a != "--no-augment"]
        assert main(args) == 0
        outs.append(torch.load(out / "checkpoint.pth", weights_only=True))
    assert all(torch.equal(outs[0]["model"][k], outs[1]["model"][k]) for k in outs[0]["model"])
    logged = [json.loads((tmp_path / f"workers{w}" / "log.jsonl").read_text().splitlines()[0]) for w in "02"]
    assert logged[0]["loss"] == logged[1]["loss"]


def test_augmentations_keep_boxes_valid_and_stop_for_the_last_epochs(stills):
    from torchvision.transforms import v2

    from services.detector.dfine.training.transforms import AugmentConfig, load_sample, pipeline

    gt = read_mot(stills / "gt.txt")
    sample = from_ground_truth(stills / "frames", gt, "gt.txt", gt_class_map(["player", "ball"]), stills).samples[0]
    heavy = (v2.RandomPhotometricDistort, v2.RandomZoomOut)
    early, late = pipeline(AugmentConfig(stop_epoch=5), 4, 320), pipeline(AugmentConfig(stop_epoch=5), 5, 320)
    assert any(isinstance(t, heavy) for t in early.transforms)
    assert not any(isinstance(t, heavy) for t in late.transforms)  # the official policy: none in the last epochs
    changed = 0
    for seed in range(12):
        torch.manual_seed(seed)
        image, target = load_sample(sample, early)
        assert image.shape == (3, 320, 320) and 0 <= image.min() and image.max() <= 1
        boxes = target["boxes"]
        assert len(boxes) == len(target["labels"]) and (boxes[:, 2:] > 0).all()
        assert (boxes[:, :2] - boxes[:, 2:] / 2 >= -1e-6).all() and (boxes[:, :2] + boxes[:, 2:] / 2 <= 1 + 1e-6).all()
        plain = load_sample(sample, pipeline(None, 0, 320))[1]["boxes"]
        changed += len(boxes) != len(plain) or not torch.allclose(boxes, plain)
    assert changed >= 6  # the draws really move, crop and flip the boxes
    flip = pipeline(AugmentConfig(False, False, False, True), 0, 256)
    flipped = [load_sample(sample, flip)[1]["boxes"] for _ in range(20)]
    plain = load_sample(sample, pipeline(None, 0, 256))[1]["boxes"]
    mirrored = plain.clone()
    mirrored[:, 0] = 1 - plain[:, 0]
    assert any(torch.allclose(f, mirrored, atol=1e-6) for f in flipped) and any(
        torch.allclose(f, plain) for f in flipped
    )


def test_multiscale_batches_use_the_official_sizes():
    import random

    from services.detector.dfine.training.transforms import collate, multiscale_sizes

    sizes = multiscale_sizes(640)
    assert sizes == [480, 512, 544, 576, 608, 640, 640, 640, 800, 768, 736, 704, 672]
    items = [(torch.rand(3, 640, 640), {"boxes": torch.tensor([[0.5, 0.5, 0.2, 0.2]]), "labels": torch.tensor([0])})]
    seen = {collate(items, sizes, random.Random(seed))[0].shape[-1] for seed in range(40)}
    assert seen <= set(sizes) and len(seen) > 3
    images, targets = collate(items, None, random.Random(0))
    assert images.shape == (1, 3, 640, 640) and torch.equal(targets[0]["boxes"], items[0][1]["boxes"])


def test_two_sequences_must_have_distinct_names(stills, tmp_path, capsys):
    other = tmp_path / "b" / "frames"
    other.parent.mkdir()
    shutil.copytree(stills / "frames", other)
    args = small_args(stills, tmp_path / "job", "--max-steps", "1")
    args[args.index("--frames") + 1 : args.index("--frames") + 2] = [str(stills / "frames"), str(other)]
    args[args.index("--gt") + 1 : args.index("--gt") + 2] = [str(stills / "gt.txt"), str(stills / "gt.txt")]
    _refused(capsys, args, "share a name")
    shutil.move(other, tmp_path / "b" / "court2")
    args[args.index("--frames") + 2] = str(tmp_path / "b" / "court2")
    assert main([*args, "--val", "court2"]) == 0
    record = read_job(tmp_path / "job")
    assert record.data["train_samples"] == 6 and record.data["val_samples"] == 6
