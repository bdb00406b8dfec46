"""The README tells the truth: its reference is generated, its commands are the real ones."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO

import pytest

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


# ----------------------------------------------------------------------------- runnable blocks
# A block right after `<!-- runnable -->` is run as pasted, each section in a fresh directory
# beside the clone's `examples/`: a yaml block whose first line is `# NAME` is saved as NAME,
# a bash block runs with bash -eu. `<!-- runnable: background -->` starts a server that the
# section's later blocks use; its port (8000 in the README) becomes a free one here.

RUNNABLE = re.compile(r"<!-- runnable(: background)? -->\n```(\w+)\n(.*?)```", re.DOTALL)


@dataclass(frozen=True)
class Block:
    section: str
    language: str
    text: str
    background: bool


def _runnable_blocks() -> list[Block]:
    blocks = []
    for match in RUNNABLE.finditer(README):
        heading = re.findall(r"^## (.+)$", README[: match.start()], re.MULTILINE)[-1]
        blocks.append(Block(heading, match[2], match[3], bool(match[1])))
    return blocks


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _environment(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MY_API_KEY"}
    bin_dir = str(Path(sys.executable).parent)  # `python` and `evalfleet` as installed
    return {**env, "PATH": f"{bin_dir}:{env.get('PATH', '')}", "EVALFLEET_HOME": str(home)}


@contextlib.contextmanager
def _section(name: str, work: Path, env: dict[str, str]) -> Iterator[list[Block]]:
    """The section's blocks, ready to run in `work`; its background servers run meanwhile."""
    blocks = [block for block in _runnable_blocks() if block.section == name]
    (work / "examples").symlink_to(REPO / "examples")
    port = str(_free_port())
    blocks = [replace(b, text=re.sub(r"\b8000\b", port, b.text)) for b in blocks]
    servers = []
    try:
        for block in (b for b in blocks if b.background):
            server = subprocess.Popen(
                ["bash", "-euc", f"exec {block.text.strip()}"],
                cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
            servers.append(server)
            first = _first_line(server.stdout, timeout=60)
            assert first is not None, f"{name}: nothing printed in 60 s by {block.text}"
            assert first.startswith("READY"), f"{block.text}: printed {first!r}, not READY"
        yield [b for b in blocks if not b.background]
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=30)
            for stream in (server.stdout, server.stderr):
                assert stream is not None
                stream.close()


def _first_line(stream: IO[str] | None, timeout: float) -> str | None:
    assert stream is not None
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(stream.readline()), daemon=True).start()
    try:
        return lines.get(timeout=timeout)
    except queue.Empty:
        return None


def _run(block: Block, work: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    if block.language == "yaml":
        name = block.text.splitlines()[0].removeprefix("#").strip()
        assert name.endswith((".yaml", ".yml")), f"a runnable yaml block starts `# NAME`: {name}"
        (work / name).write_text(block.text)
        return subprocess.CompletedProcess([], 0, "", "")
    assert block.language == "bash", f"{block.section}: cannot run a {block.language} block"
    return subprocess.run(
        ["bash", "-euc", block.text], cwd=work, env=env, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip


def test_the_readme_has_runnable_blocks():
    sections = {block.section for block in _runnable_blocks()}
    assert {"Quick start", "Evaluating an endpoint that already runs"} <= sections


@pytest.mark.parametrize("section", sorted({block.section for block in _runnable_blocks()}))
def test_every_runnable_block_runs_as_pasted(section, tmp_path):
    work, env = Path.cwd(), _environment(tmp_path / "home")  # cwd: a fresh directory
    with _section(section, work, env) as blocks:
        for block in blocks:
            ran = _run(block, work, env)
            assert ran.returncode == 0, f"{block.text}\n{ran.stdout[-2000:]}{ran.stderr[-2000:]}"


def test_the_endpoint_example_scores_what_the_readme_says(tmp_path):
    work, env = Path.cwd(), _environment(tmp_path / "home")  # cwd: a fresh directory
    with _section("Evaluating an endpoint that already runs", work, env) as blocks:
        ran = [_run(block, work, env) for block in blocks]
    claimed = re.search(r"It scores `accuracy (\S+)` \(n=(\d+)\)", README)
    assert claimed is not None
    output = ran[-1].stdout + ran[-1].stderr
    assert f"accuracy {claimed[1]}" in output and f"n={claimed[2]}" in output, output


def test_the_endpoint_example_without_its_key_records_nothing(tmp_path):
    """The API key's env var is checked before anything starts: exit 2, one line naming
    it, no invocation recorded, no results directory."""
    work, env = Path.cwd(), _environment(tmp_path / "home")  # cwd: a fresh directory
    with _section("Evaluating an endpoint that already runs", work, env) as blocks:
        (config,) = [b for b in blocks if b.language == "yaml"]
        _run(config, work, env)
        ran = subprocess.run(
            ["evalfleet", "run", "--config", "my_eval.yaml"], cwd=work, env=env,
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    assert ran.returncode == 2, ran.stderr
    assert len(ran.stderr.strip().splitlines()) == 1 and "MY_API_KEY" in ran.stderr
    listed = subprocess.run(
        ["evalfleet", "ls", "runs", "--json"], cwd=work, env=env,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert json.loads(listed.stdout) == []
    assert sorted(path.name for path in work.iterdir()) == ["examples", "my_eval.yaml"]
