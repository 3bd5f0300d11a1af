"""Evaluator interfaces: the metrics JSON, class filter, robust input, plots, CLI."""

import gc
import json

import numpy as np
import pytest

from services.evaluator.evaluate import evaluate, report_json, sweep
from services.evaluator.plots import plot_comparison, plot_sweep, write_plots
from services.gateway.cli import main
from shared.errors import InputError
from shared.formats.mot_txt import MotTable, parse_mot_text, write_mot
from shared.schemas import MetricsReport

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
    plot_sweep([MetricsReport(**f) for f in sweep(scene.gt, scene.gt, [0.3, 0.5, 0.9])], tmp_path / "sweep.png")
    plot_comparison([bad, evaluate(scene.gt, scene.gt)], ["bad", "perfect"], tmp_path / "cmp.png")
    assert (tmp_path / "sweep.png").read_bytes()[:8] == PNG and (tmp_path / "cmp.png").read_bytes()[:8] == PNG


EVAL_PROCESS = """
import sys
from services.gateway.cli import main
code = main(sys.argv[1:])
print(code, " ".join(sys.modules))
"""


def test_cli_eval_imports_only_what_it_uses_and_writes_the_contract_document(scene, tmp_path):
    """`motpipe eval --json` as a process imports no pydantic, scipy, matplotlib, torch or rich (each costs
    tens of milliseconds of a ~0.3 s command) and writes what the contract model writes, per-class blocks
    and NaN (as null) included; the table it prints names every standard metric."""
    import subprocess
    import sys

    from shared.formats.mot_txt import read_mot
    from tests.conftest import REPO

    pred, out = tmp_path / "pred.txt", tmp_path / "metrics.json"
    tracks = scene.gt.select(scene.gt.frame > 5)
    write_mot(pred, MotTable(tracks.frame, tracks.id + 100, tracks.boxes + 3.0, tracks.conf, tracks.cls, tracks.vis))
    command = [sys.executable, "-c", EVAL_PROCESS, "eval", "--gt", str(scene.gt_txt), "--pred", str(pred), "--json",
               str(out)]  # fmt: skip
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    *table, last = done.stdout.strip().splitlines()
    code, modules = last.split(" ", 1)
    for name in ("HOTA", "MOTA", "IDF1", "precision", "combined_loss"):
        assert any(line.split()[:1] == [name] or f"  {name}  " in line for line in table), name
    assert code == "0", done.stdout[-2000:] + done.stderr[-2000:]
    loaded = set(modules.split())
    assert not {"pydantic", "scipy", "matplotlib", "torch", "cv2", "rich"} & loaded, sorted(loaded)
    expected = evaluate(scene.gt, read_mot(pred))
    assert expected.per_class and "player" in expected.per_class
    assert json.loads(out.read_text()) == json.loads(expected.model_dump_json())
    fields = {"trackeval": {"x": float("nan"), "y": [1.0, float("inf")]}, "notes": []}
    assert json.loads(report_json(fields)) == {"trackeval": {"x": None, "y": [1.0, None]}, "notes": []}


def test_cli_eval_json_plots_compare_sweep(scene, tmp_path, capsys):
    pred = tmp_path / "pred.txt"
    write_mot(pred, scene.gt.select(scene.gt.frame > 5))
    assert main(["eval", "--gt", str(scene.gt_labelstudio), "--pred", str(pred), "--json", "-"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["trackeval"]["CLR_FN"] == int((scene.gt.frame <= 5).sum())
    assert gc.isenabled()  # the own-process tuning (no GC, allocator) is not applied to a caller's process
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


def test_lookup_table_relabelling_equals_numpys_unique_on_every_path():
    """Ids and frames are relabelled through a lookup table when their range is small and by a sort
    otherwise (huge or negative values); both give np.unique's answer. A repeated id in a frame is found
    with or without the sort."""
    from services.evaluator.metrics import sequence

    rng = np.random.default_rng(0)
    cases = [rng.integers(0, 50, 300), rng.integers(0, 10**12, 300), rng.integers(-5, 5, 40),
             np.array([7]), np.zeros(0, dtype=np.int64)]  # fmt: skip
    for values in cases:
        distinct, index = sequence.relabel(values)
        expected_distinct, expected_index = np.unique(values, return_inverse=True)
        assert distinct.tolist() == expected_distinct.tolist() and index.tolist() == expected_index.tolist()
    assert sequence._first_repeat(np.array([3, 4, 999])) is None  # ascending: one pass
    assert sequence._first_repeat(np.array([3, 999, 4])) is None  # the sort
    assert sequence._first_repeat(np.array([3, 999, 4, 999])) == 999
    big_ids = parse_mot_text("1,900000000000,0,0,10,10\n1,900000000000,1,1,10,10\n")  # the sort path
    with pytest.raises(InputError, match="id 900000000000 appears more than once in frame 1"):
        evaluate(big_ids, big_ids)
