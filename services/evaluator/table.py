"""Terminal tables of metrics reports, from a report's fields (`evaluate_fields`, or
`MetricsReport.model_dump()`). Plain aligned text: `motpipe eval` prints one and needs no rich (~20 ms of
a ~0.3 s command)."""

from __future__ import annotations

from typing import Any

STANDARD = ("HOTA", "DetA", "AssA", "LocA", "MOTA", "MOTP", "IDF1", "IDSW", "Frag", "MT", "PT", "ML",
            "CLR_TP", "CLR_FP", "CLR_FN")  # fmt: skip
GROUP = ("precision", "recall", "f1_score", "mota", "avg_iou", "fragmentation_ratio")


def _fmt(value) -> str:
    return f"{value:.4f}" if isinstance(value, float) and not float(value).is_integer() else f"{value:g}"


def text_table(title: str, header: list[str], rows: list[list[str]], right: set[int]) -> str:
    """A title, a header, a rule and the rows, columns padded to their widest cell (`right`: the columns
    aligned right)."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        padded = (c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True)))
        return "  ".join(padded).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([title, line(header), rule, *(line(row) for row in rows)])


def report_table(report: dict[str, Any], title: str = "metrics") -> str:
    frames = report.get("frames")
    scope = f", frames: {frames}" if frames and frames != "all" else ""
    right = [(k, report["framewise"].get(k, 0)) for k in GROUP] + list(report["losses"].items())
    rows = []
    for i in range(max(len(STANDARD), len(right))):
        left_row = [STANDARD[i], _fmt(report["trackeval"].get(STANDARD[i], 0))] if i < len(STANDARD) else ["", ""]
        right_row = [right[i][0], _fmt(right[i][1])] if i < len(right) else ["", ""]
        rows.append(left_row + right_row)
    header = ["standard (TrackEval) — report these", "value", "the group's framewise / losses", "value"]
    return text_table(f"{title} (IoU {report['iou_threshold']}{scope})", header, rows, {1, 3})


def comparison_table(reports: list[dict[str, Any]], labels: list[str], title: str = "comparison") -> str:
    rows = [[name, *(_fmt(r["trackeval"][name]) for r in reports)] for name in ("HOTA", "MOTA", "IDF1", "IDSW")]
    rows += [[name, *(_fmt(r["framewise"][name]) for r in reports)] for name in ("precision", "recall", "f1_score")]
    rows.append(["combined_loss", *(_fmt(r["losses"]["combined_loss"]) for r in reports)])
    return text_table(title, ["metric", *labels], rows, set(range(1, len(labels) + 1)))
