"""TrackEval's own Evaluator on one laid-out sequence, as its users run it (MotChallenge2DBox, no
preprocessing, no output files). Its own module so that the whole-process benchmark's TrackEval process
imports TrackEval and nothing of motpipe's (`eval_speed.py` imports rich and our metrics: ~0.08 s)."""

from __future__ import annotations

import contextlib
import io


def run_trackeval(dataset_config: dict) -> dict:
    import trackeval

    quiet = {"PRINT_CONFIG": False}
    eval_config = {
        "USE_PARALLEL": False,
        "PRINT_RESULTS": False,
        "PRINT_CONFIG": False,
        "TIME_PROGRESS": False,
        "DISPLAY_LESS_PROGRESS": True,
        "OUTPUT_SUMMARY": False,
        "OUTPUT_DETAILED": False,
        "PLOT_CURVES": False,
        "OUTPUT_EMPTY_CLASSES": False,
    }
    evaluator = trackeval.Evaluator(eval_config)
    dataset = trackeval.datasets.MotChallenge2DBox(dataset_config)
    # Count is always added by the Evaluator itself
    metrics = [trackeval.metrics.HOTA(), trackeval.metrics.CLEAR(quiet), trackeval.metrics.Identity(quiet)]
    with contextlib.redirect_stdout(io.StringIO()):
        results, _ = evaluator.evaluate([dataset], metrics)
    return results["MotChallenge2DBox"]["motpipe"]["COMBINED_SEQ"]["pedestrian"]
