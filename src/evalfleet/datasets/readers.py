"""Read a cached source file into rows (dicts), whatever its format."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from evalfleet.datasets.sources import Source
from evalfleet.exceptions import DataError


def read_rows(source: Source, path: Path) -> list[dict[str, Any]]:
    try:
        if source.format == "parquet":
            return _parquet(path)
        text = path.read_text(encoding="utf-8")
        if source.format == "jsonl":
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        if source.format == "csv":
            return list(csv.DictReader(text.splitlines(keepends=True)))
        rows = csv.reader(text.splitlines(keepends=True), delimiter="\t", quoting=csv.QUOTE_NONE)
        return [dict(zip(source.columns, row, strict=False)) for row in rows if row]
    except (ValueError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: not a valid {source.format} file ({exc})") from None


def _parquet(path: Path) -> list[dict[str, Any]]:
    try:
        import pyarrow.parquet as pq
    except ModuleNotFoundError:
        raise DataError(
            f"reading {path.name} (parquet) needs pyarrow: pip install 'evalfleet[data]'"
        ) from None
    try:
        return pq.read_table(path).to_pylist()
    except Exception as exc:  # pyarrow raises its own ArrowInvalid etc.
        raise DataError(f"{path}: not a valid parquet file ({exc})") from None
