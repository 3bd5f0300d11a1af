"""Readable terminal tables of metrics reports (rich), from a report's fields (`evaluate_fields`, or
`MetricsReport.model_dump()`)."""

from __future__ import annotations

from typing import Any

from rich.table import Table

STANDARD = ("HOTA", "DetA", "AssA", "LocA", "MOTA", "MOTP", "IDF1", "IDSW", "Frag", "MT", "PT", "ML",
            "CLR_TP", "CLR_FP", "CLR_FN")  # fmt: skip
GROUP = ("precision", "recall", "f1_score", "mota", "avg_iou", "fragmentation_ratio")


def _fmt(value) -> str:
    return f"{value:.4f}" if isinstance(value, float) and not float(value).is_integer() else f"{value:g}"


def report_table(report: dict[str, Any], title: str = "metrics") -> Table:
    frames = report.get("frames")
    scope = f", frames: {frames}" if frames and frames != "all" else ""
    table = Table(title=f"{title} (IoU {report['iou_threshold']}{scope})")
    table.add_column("standard (TrackEval) — report these")
    table.add_column("value", justify="right")
    table.add_column("the group's framewise / losses")
    table.add_column("value", justify="right")
    right = [(k, report["framewise"].get(k, 0)) for k in GROUP] + list(report["losses"].items())
    for i in range(max(len(STANDARD), len(right))):
        left_row = (STANDARD[i], _fmt(report["trackeval"].get(STANDARD[i], 0))) if i < len(STANDARD) else ("", "")
        right_row = (right[i][0], _fmt(right[i][1])) if i < len(right) else ("", "")
        table.add_row(*left_row, *right_row)
    return table


def comparison_table(reports: list[dict[str, Any]], labels: list[str], title: str = "comparison") -> Table:
    table = Table(title=title)
    table.add_column("metric")
    for label in labels:
        table.add_column(label, justify="right")
    for name in ("HOTA", "MOTA", "IDF1", "IDSW"):
        table.add_row(name, *(_fmt(r["trackeval"][name]) for r in reports))
    for name in ("precision", "recall", "f1_score"):
        table.add_row(name, *(_fmt(r["framewise"][name]) for r in reports))
    table.add_row("combined_loss", *(_fmt(r["losses"]["combined_loss"]) for r in reports))
    return table
