"""One self-contained HTML page: the stylesheet, the scripts and the data inline, nothing
fetched when it is viewed (a report is mailed, archived, opened offline)."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from evalfleet.contract.files import make_private_dirs, write_private
from evalfleet.exceptions import UsageError

ASSETS = Path(__file__).resolve().parent / "assets"


def embed_json(data: Any) -> str:
    """`data` as JSON that is safe inside <script type="application/json">: no `<` at all
    (so neither `</script>` nor `<!--` in a model's answer can end or bend the element);
    JSON.parse reads `\\u003c` back as `<`."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _asset(name: str) -> str:
    return (ASSETS / name).read_text(encoding="utf-8")


def page(title: str, data: Any, script: str) -> str:
    """The whole page: common.css, common.js and `script` (an asset's name) inline."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        # No network at view time, enforced: the page could not load anything if it tried.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">"
        f"<title>{html.escape(title)}</title>\n<style>{_asset('common.css')}</style>\n"
        '</head><body><div id="app"></div>\n'
        f'<script type="application/json" id="evalfleet-data">{embed_json(data)}</script>\n'
        f"<script>{_asset('common.js')}</script>\n<script>{_asset(script)}</script>\n"
        "</body></html>\n"
    )


def write_page(path: Path, text: str) -> None:
    try:
        make_private_dirs(path.parent)
        # Private like the files it is made of: it holds the prompts and answers.
        write_private(path, text)
    except OSError as exc:
        raise UsageError(f"cannot write the report to {path}: {exc.strerror or exc}") from None


def write_compare_html(comparison: dict[str, Any], path: Path) -> None:
    """The compare page: the table (significant rows marked) and a browser of the samples
    that flipped, filtered by task, direction and candidate. `comparison` is `evalfleet
    compare`'s dict (kind "compare": runs, rows, flips, skipped)."""
    _check_kind(comparison, "compare", ("runs", "rows"))
    runs = comparison["runs"]
    data = {**comparison, "flips": [_flip(f, runs) for f in comparison.get("flips") or []]}
    ids = " vs ".join(str(run.get("invocation_id", "")) for run in runs if isinstance(run, dict))
    write_page(Path(path), page(f"evalfleet compare {ids}", data, "compare.js"))


def _flip(flip: Any, runs: list[Any]) -> dict[str, Any]:
    """A flip with `candidate` (the candidate's invocation id) and `candidate_answer`
    apart: the schema names both "candidate", so either may come as that key."""
    if not isinstance(flip, dict):
        raise UsageError(f"compare page: a flip must be a dict, not {type(flip).__name__}")
    candidate = flip.get("candidate")
    if isinstance(candidate, dict):
        answer = candidate
        only = [r.get("invocation_id") for r in runs[1:] if isinstance(r, dict)]
        candidate = flip.get("candidate_id") or (only[0] if len(only) == 1 else "")
    else:
        answer = flip.get("candidate_answer") or {}
    return {**flip, "candidate": str(candidate or ""), "candidate_answer": answer}


def write_sweep_html(sweep: dict[str, Any], path: Path) -> None:
    """The sweep page: a models x tasks table, each cell the metric with its 95% CI and n.
    `sweep` is a dict of kind "sweep": models, tasks, cells (and optional `notes` lines)."""
    _check_kind(sweep, "sweep", ("models", "tasks", "cells"))
    write_page(Path(path), page("evalfleet sweep", sweep, "sweep.js"))


def _check_kind(data: Any, kind: str, keys: tuple[str, ...]) -> None:
    if not isinstance(data, dict) or data.get("kind") != kind:
        raise UsageError(f"expected a dict with kind {kind!r} to render the {kind} page")
    missing = [key for key in keys if not isinstance(data.get(key), list)]
    if missing:
        raise UsageError(f"the {kind} page needs the lists {', '.join(missing)} in its data")
