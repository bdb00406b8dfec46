"""Serve the payload's rows to a reference's own `datasets.load_dataset` calls (no hub here).

`tables` maps "<path>" or "<path>:<name>" to {split: [row, ...]}; `load_dataset(path,
name, split=...)` then returns exactly those rows as a real `datasets.Dataset` (or a
`DatasetDict` without `split`), so the reference's loading code runs unchanged.
"""

from __future__ import annotations

from typing import Any


def serve_datasets(tables: dict[str, dict[str, list[dict[str, Any]]]]) -> None:
    import datasets

    def load_dataset(
        path: str, name: str | None = None, *args: Any, split: str | None = None, **kwargs: Any
    ):
        name = (
            name
            or kwargs.get("data_dir")
            or (args[0] if args and isinstance(args[0], str) else None)
        )
        key = f"{path}:{name}" if name and f"{path}:{name}" in tables else path
        if key not in tables:
            raise KeyError(
                f"driver has no rows for load_dataset({path!r}, {name!r}); known: {sorted(tables)}"
            )
        splits = {s: datasets.Dataset.from_list(rows) for s, rows in tables[key].items()}
        if split is None:
            return datasets.DatasetDict(splits)
        return splits[split]

    datasets.load_dataset = load_dataset
    import sys

    # Modules that did `from datasets import load_dataset` before the patch.
    for module in list(sys.modules.values()):
        if (
            module is not None
            and getattr(module, "load_dataset", None) is not None
            and module is not datasets
        ):
            try:
                if getattr(module.load_dataset, "__module__", "").startswith("datasets"):
                    module.load_dataset = load_dataset
            except Exception:
                pass
