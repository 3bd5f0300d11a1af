"""Plots that do not mislead (#25 item 3), checked on the figures themselves: every figure names what it
shows; a sweep's ranked axis is zoomed to its values and its labels are short; heatmap cells carry labels that
differ wherever their colours do, in a colour that reads on the cell, with a third parameter as facets;
training curves per step with a smoothed line, a validation that is still zero says so; counts get integer
ticks; the two MOTA definitions are named apart."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from matplotlib.colors import to_rgb

import services.evaluator.plots as eval_plots
import services.trainer.plots as train_plots
import services.trainer.sweep_plots as sweep_plots
from services.evaluator.evaluate import evaluate
from services.trainer.sweeps import ranked
from shared.contrast import contrast
from shared.plotting import distinct_digits, short, text_colour_on
from shared.schemas import JobRecord
from shared.schemas.train import EpochRecord


@pytest.fixture
def figures(monkeypatch):
    """Every figure a plot function saves, kept open for inspection."""
    kept = []
    for module in (eval_plots, train_plots, sweep_plots):
        real = module.save_png

        def keep(fig, path, *args, _real=real, **kwargs):
            kept.append(fig)
            fig.savefig(path, format="png")
            return path

        monkeypatch.setattr(module, "save_png", keep)
    return kept


def texts(fig) -> list[str]:
    found = [t.get_text() for t in fig.findobj(lambda o: hasattr(o, "get_text"))]
    return [t for t in found if t]


def test_numbers_are_short_yet_distinct_and_cell_text_reads():
    assert short(0.000123456) == "0.0001235" and short(12345.6) == "1.235e+04" and short(10) == "10"
    assert short("/data/ckpts/motrv2_minimal.pth") == "motrv2_minimal.pth" and short(True) == "True"
    assert distinct_digits([0.813541, 0.813549, float("nan")]) == 5 and distinct_digits([0.5, 0.7]) == 3
    assert contrast((0, 0, 0), (1, 1, 1)) == pytest.approx(21) and contrast((0.2, 0.4, 0.6), (0.2, 0.4, 0.6)) == 1
    assert text_colour_on((0.99, 0.91, 0.14)) == "black" and text_colour_on((0.27, 0.0, 0.33)) == "white"


def _sweep_rows():
    grid = {
        "score_threshold": [0.3, 0.4, 0.5],
        "miss_tolerance": [10, 20],
        "weights": ["/c/minimal.pth", "/c/aggr.pth"],
    }
    rows = []
    for i, (a, b, c) in enumerate(itertools.product(*grid.values())):
        hota = 0.80 + 0.02 * a - 0.0003 * b + (0.01 if "minimal" in c else 0) + 0.00001 * i
        rows.append({"run": f"r{i}", "params": dict(zip(grid, (a, b, c), strict=True)), "state": "succeeded",
                     "HOTA": hota})  # fmt: skip
    return rows, grid


def test_sweep_plots_zoom_label_and_facet(figures, tmp_path):
    rows, grid = _sweep_rows()
    written = sweep_plots.plot_sweep(rows, grid, tmp_path, "sweep 3fa2 “night”: motrv2 on run 9c0e", ranked)
    assert [p.name for p in written] == ["ranked.png", "heatmap.png"]
    bars, heat = figures
    ax = bars.axes[0]
    hotas = [r["HOTA"] for r in rows]
    low, high = ax.get_xlim()
    assert min(hotas) - 0.02 < low < min(hotas) and max(hotas) < high < max(hotas) + 0.02  # zoomed, not 0..1
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert "weights=minimal.pth" in labels[-1].replace("\n", " ") and all(len(line) <= 40 for t in labels
                                                                          for line in t.split("\n"))  # fmt: skip
    assert "sweep 3fa2" in " ".join(texts(bars)) and "sweep 3fa2" in " ".join(texts(heat))
    facets = [a for a in heat.axes if a.get_images()]
    # rows and columns: the two that vary most; the third, weights, one facet per value
    assert [a.get_title() for a in facets] == ["weights=aggr.pth", "weights=minimal.pth"]
    shown = {}
    for facet in facets:
        image = facet.get_images()[0]
        for text in facet.texts:
            x, y = (int(round(v)) for v in text.get_position())
            value = image.get_array()[y, x]
            cell = image.cmap(image.norm(value))
            assert contrast(to_rgb(text.get_color()), cell) >= 4.5, (text.get_text(), cell)
            shown.setdefault(text.get_text(), set()).add(round(float(value), 9))
    assert all(len(values) == 1 for values in shown.values()), "two different values carry one label"
    assert len(shown) == len(rows) == 12  # every combination its own cell, no two labels alike


def test_a_long_sweep_title_wraps_and_nothing_on_the_heatmap_overlaps_it(figures, tmp_path):
    rows, grid = _sweep_rows()
    rows = [r for r in rows if r["params"]["weights"] == "/c/aggr.pth"]
    grid["weights"] = ["/c/aggr.pth"]
    title = "sweep e997 “match3.mp4 · sweep bytetrack score_threshold, miss_tolerance”: bytetrack on run a8b9 (its " \
            "det_db.json vs its ground truth)"  # fmt: skip
    sweep_plots.plot_sweep(rows, grid, tmp_path, title, ranked)
    heat = figures[1]
    heat.canvas.draw()
    renderer = heat.canvas.get_renderer()
    top = heat._suptitle
    assert "per combination" in top.get_text()  # two parameters vary: each cell is one run
    below = top.get_window_extent(renderer).y0
    labels = [text for ax in heat.axes for text in (ax.yaxis.label, ax.xaxis.label, ax.title) if text.get_text()]
    assert all(part.get_window_extent(renderer).y1 <= below for part in [*heat.axes, *labels])
    assert top.get_window_extent(renderer).width <= heat.bbox.width  # wrapped to the figure
    bars = figures[0]  # the ranked plot's title wraps too, instead of widening the figure past its 7 in
    bars.canvas.draw()
    assert bars.axes[0].title.get_window_extent(bars.canvas.get_renderer()).width <= bars.bbox.width


def test_training_curves_per_step_smoothed_and_an_empty_validation_says_so(figures, tmp_path):
    rng = np.random.default_rng(0)
    with open(tmp_path / "log.jsonl", "w") as log:
        for step in [*range(100), *range(90, 200)]:  # a resumed job logs steps 90..99 twice
            log.write(json.dumps({"step": step, "epoch": step // 100, "loss": 10 - step / 40 + rng.normal()}) + "\n")
        log.write('{"step": 200, "lo')  # cut by a kill
    epochs = [EpochRecord(epoch=e, steps=100, losses={"loss": 5.0}, val={"mAP": 0.0, "mAP50": 0.0, "AR": 0.0})
              for e in range(2)]  # fmt: skip
    record = JobRecord(job="d00d", model="dfine", name="night", epochs=epochs,
                       data={"weights": "/w/dfine_l_obj365.pth", "coco": "/d/instances.json"})  # fmt: skip
    written = train_plots.plot_curves(record, tmp_path / "plots")
    assert [p.name for p in written] == ["loss.png", "val.png"]
    loss, val = figures
    every, smooth = loss.axes[0].get_lines()
    assert list(every.get_xdata()) == list(range(200)) and np.std(smooth.get_ydata()) < np.std(every.get_ydata())
    assert loss.axes[0].get_xlabel() == "step"
    title = loss.axes[0].get_title()
    assert "dfine job d00d “night”" in title and "dfine_l_obj365.pth" in title and "instances.json" in title
    assert val.axes[0].get_lines() == [] and any("no detections yet" in t for t in texts(val))


def test_evaluation_figures_name_the_run_and_the_two_motas(figures, scene, tmp_path):
    report = evaluate(scene.gt, scene.gt)
    eval_plots.write_plots(report, tmp_path, "run 3fa2 “serve”: tracks.txt vs gt.txt")
    assert len(figures) == 6 and all("run 3fa2" in " ".join(texts(f)) for f in figures)
    overview = figures[0].axes[0]
    ticks = [t.get_text() for t in overview.get_xticklabels()]
    assert "MOTA" in ticks and "MOTA\n(no IDSW)" in ticks
    assert {"TrackEval", "the group's framewise block"} <= set(texts(figures[0]))
    breakdown = figures[3].axes[0]
    assert all(float(t).is_integer() for t in breakdown.get_yticks())
    per_frame = figures[2].axes[0]
    assert all(float(t).is_integer() for t in per_frame.get_yticks())
