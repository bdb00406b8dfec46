"""The comparison as terminal lines: a header naming the runs, a table (cells only; the CLI
aligns them), and the skipped tasks."""

from __future__ import annotations

import math
from typing import Any

RULE = (
    "significant (*): p < 0.05 and the paired 95 % CI of the difference excludes 0; "
    "flips: right->wrong/wrong->right"
)


def header_lines(comparison: dict[str, Any]) -> list[str]:
    runs = comparison["runs"]
    lines = [f"baseline:  {runs[0]['invocation_id']}  {runs[0]['label']}"]
    lines += [f"candidate: {run['invocation_id']}  {run['label']}" for run in runs[1:]]
    return lines


def table(comparison: dict[str, Any]) -> tuple[list[str], list[dict[str, str]]]:
    """(columns, rows) of the comparison table; a `vs` column (the candidate's id) only
    with several candidates."""
    several = len(comparison["runs"]) > 2
    columns = ["task", "metric", *(["vs"] if several else []), "baseline", "candidate",
               "diff", "95% CI", "p", "test", "sig", "flips", "n"]  # fmt: skip
    rows = []
    for row in comparison["rows"]:
        low, high = row["ci95"]
        rows.append(
            {
                "task": row["task"],
                "metric": row["metric"],
                "vs": row["candidate"],
                "baseline": f"{row['baseline_value']:.4f}",
                "candidate": f"{row['candidate_value']:.4f}",
                "diff": f"{row['difference']:+.4f}",
                "95% CI": f"[{low:+.4f}, {high:+.4f}]",
                "p": _p(row["p_value"]),
                "test": row["test"],
                "sig": "*" if row["significant"] else "",
                "flips": (
                    f"-{row['right_to_wrong']}/+{row['wrong_to_right']}"
                    if row["kind"] == "binary"
                    else ""
                ),
                "n": str(row["n_shared"]),
            }
        )
    return columns, rows


def skipped_lines(comparison: dict[str, Any]) -> list[str]:
    return [f"skipped {item['task']}: {item['reason']}" for item in comparison["skipped"]]


def _p(value: float) -> str:
    if math.isnan(value):
        return "-"
    return "<0.0001" if value < 1e-4 else f"{value:.4f}"
