"""Evaluator interfaces: the metrics JSON, class filter, robust input, plots, CLI."""

import json

import numpy as np
import pytest

from services.evaluator.evaluate import evaluate, sweep
from services.evaluator.plots import plot_comparison, plot_sweep, write_plots
from services.gateway.cli import main
from shared.errors import InputError
from shared.formats.mot_txt import MotTable, parse_mot_text, write_mot

PNG = b"\x89PNG\r\n\x1a\n"


def test_report_has_every_block_of_the_contract(scene):
    report = evaluate(scene.gt, scene.gt)  # perfect tracks
    t = report.trackeval
    for name in ("HOTA", "DetA", "AssA", "LocA", "MOTA", "MOTP", "IDF1", "IDSW", "Frag", "MT", "Dets", "GT_IDs",
                 "OWTA", "HOTA(0)", "LocA(0)", "sMOTA", "CLR_F1", "MOTAL"):  # fmt: skip
        assert name in t, name
    assert t["HOTA"] == pytest.approx(1.0) and t["MOTA"] == 1.0 and t["IDF1"] == 1.0
    assert report.framewise["precision"] == 1.0 and report.losses["detection_loss"] == 0.0
    assert len(report.per_frame) == scene.frames
    assert set(report.per_frame[0]) == {"frame", "gt", "pred", "tp", "fp", "fn", "precision", "recall", "f1"}


def test_class_filter_scores_players_and_ball_apart(scene):
    players_only = scene.gt.select(scene.gt.cls == 1)
    assert evaluate(scene.gt, players_only, classes=[1]).trackeval["MOTA"] == 1.0
    assert evaluate(scene.gt, players_only, classes=[2]).trackeval["CLR_TP"] == 0
    assert evaluate(scene.gt, players_only).trackeval["CLR_FN"] == int((scene.gt.cls == 2).sum())


def test_robust_inputs():
    gt = parse_mot_text("1,1,0,0,10,10\n2,1,0,0,10,10\n3,1,0,0,10,10\n")
    empty = evaluate(gt, MotTable.empty())  # a 0-byte tracker output
    assert empty.trackeval["CLR_FN"] == 3 and empty.framewise["total_frames"] == 0
    extra = parse_mot_text("2,5,0,0,10,10\n9,6,50,50,10,10\n")  # frame 9 has no GT; frames 1, 3 no predictions
    report = evaluate(gt, extra)
    assert report.trackeval["CLR_FP"] == 1 and report.trackeval["CLR_FN"] == 2
    assert report.framewise["false_positives"] == 0  # the group's rule ignores frames missing on one side
    zero_area = parse_mot_text("1,1,0,0,0,10\n")
    assert evaluate(zero_area, zero_area).trackeval["CLR_TP"] == 0  # zero area never matches
    with pytest.raises(InputError, match="id 5 appears more than once in frame 2"):
        evaluate(gt, parse_mot_text("2,5,0,0,10,10\n2,5,1,1,10,10\n"))
    with pytest.warns(UserWarning, match="non-integral id"):
        assert parse_mot_text("1,1.5,0,0,10,10\n").id.tolist() == [1]
    assert parse_mot_text("1,2.0,0,0,10,10\n").id.tolist() == [2]
    with pytest.raises(InputError, match="IoU threshold"):
        evaluate(gt, gt, iou=0.0)


def test_plots_are_valid_pngs_also_for_negative_mota_and_empty_input(scene, tmp_path):
    noisy = MotTable.from_matrix(
        np.column_stack([scene.gt.frame, scene.gt.id, scene.gt.boxes + 300, np.ones((len(scene.gt), 4))])
    )
    bad = evaluate(scene.gt, noisy)
    assert bad.trackeval["MOTA"] < 0
    for report, folder in ((bad, "neg"), (evaluate(scene.gt, MotTable.empty()), "empty")):
        names = write_plots(report, tmp_path / folder)
        assert len(names) == 6
        for name in names:
            assert (tmp_path / folder / name).read_bytes()[:8] == PNG
    plot_sweep(sweep(scene.gt, scene.gt, [0.3, 0.5, 0.9]), tmp_path / "sweep.png")
    plot_comparison([bad, evaluate(scene.gt, scene.gt)], ["bad", "perfect"], tmp_path / "cmp.png")
    assert (tmp_path / "sweep.png").read_bytes()[:8] == PNG and (tmp_path / "cmp.png").read_bytes()[:8] == PNG


def test_cli_eval_json_plots_compare_sweep(scene, tmp_path, capsys):
    pred = tmp_path / "pred.txt"
    write_mot(pred, scene.gt.select(scene.gt.frame > 5))
    assert main(["eval", "--gt", str(scene.gt_labelstudio), "--pred", str(pred), "--json", "-"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["trackeval"]["CLR_FN"] == int((scene.gt.frame <= 5).sum())
    assert main(["eval", "--gt", str(scene.gt_txt), "--pred", str(pred), "--plots", str(tmp_path / "p")]) == 0
    assert "HOTA" in capsys.readouterr().out and (tmp_path / "p" / "dashboard.png").is_file()
    assert main(["eval", "--gt", str(scene.gt_txt), "--compare", str(pred), str(scene.gt_txt), "--labels", "a,b",
                 "--plots", str(tmp_path / "c")]) == 0  # fmt: skip
    assert (tmp_path / "c" / "comparison.png").is_file()
    assert (
        main(["eval", "--gt", str(scene.gt_txt), "--pred", str(pred), "--sweep", "--json", str(tmp_path / "s.json")])
        == 0
    )
    assert [r["iou_threshold"] for r in json.loads((tmp_path / "s.json").read_text())][::6] == [0.3, 0.6, 0.9]
    dup = tmp_path / "dup.txt"
    dup.write_text("1,1,0,0,5,5\n1,1,0,0,5,5\n")
    assert main(["eval", "--gt", str(scene.gt_txt), "--pred", str(dup)]) == 2
    assert "appears more than once in frame 1" in capsys.readouterr().err
