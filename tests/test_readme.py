"""The README tells the truth: its reference is generated, its commands are the real ones."""

from __future__ import annotations

import re

from evalfleet.config.reference import replace_section
from tests.conftest import REPO

README = (REPO / "README.md").read_text()


def test_config_reference_matches_the_models():
    assert replace_section(README) == README, (
        "README config reference is stale: run python -m evalfleet.config.reference --write README.md"
    )


def _quick_start() -> list[str]:
    block = README.split("## Quick start", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip()]


def test_quick_start_is_two_commands_and_ci_runs_the_test_one():
    main_job, test_command = _quick_start()
    example = main_job.split("evalfleet run --config ", 1)[1].split()[0]
    assert (REPO / example).is_file()
    ci_script = (REPO / ".ci" / "run").read_text()
    assert re.search(rf"^{re.escape(test_command)}$", ci_script, re.MULTILINE)
    extras = main_job.split('pip install -e "', 1)[1].split('"', 1)[0]
    assert f'pip install --quiet -e "{extras}"' in ci_script, "CI installs what the README installs"


def test_every_documented_example_loads():
    from evalfleet.config import load_config

    for example in sorted((REPO / "examples").glob("*.yaml")):
        overrides = []
        if "slurm" in example.name:
            overrides = ["execution.username=someone"]
        load_config(example, overrides=overrides)
