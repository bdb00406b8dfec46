"""Bad input found by issue 17's probe: one line naming the key or file, exit 2, no
traceback, and (for what used to be found only once the run had started) nothing recorded.

Every case runs `evalfleet run` as a user types it (in-process through `main`, where an
uncaught exception fails the test; a subprocess where today's code would grow without
bound), against an endpoint simulator where the run gets as far as sending requests.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from evalfleet.testing import run_simulator

CONFIG = """\
target:
  api_endpoint:
    url: {url}
    model_id: sim-model
execution: {{type: local, output_dir: {out}}}
evaluation:
  params: {{parallelism: 2}}
  tasks:
    - name: adds
      dataset: {{path: {data}}}
      scorer: exact_match
"""


def _data(directory: Path) -> Path:
    path = directory / "adds.jsonl"
    path.write_text(
        "".join(
            json.dumps({"id": f"s{i}", "prompt": f"What is {i} plus one?", "answer": str(i + 1)})
            + "\n"
            for i in range(3)
        )
    )
    return path


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return _data(tmp_path)


@pytest.fixture
def config(tmp_path: Path, data: Path):
    """A valid config file with `replace` applied to its text."""

    def write(url: str = "http://127.0.0.1:9/v1", **replace: str) -> Path:
        text = CONFIG.format(url=url, out=tmp_path / "results", data=data)
        for old, new in replace.items():
            assert old in text, old
            text = text.replace(old, new)
        path = tmp_path / "config.yaml"
        path.write_text(text)
        return path

    return write


def _one_line(result, *fragments: str) -> str:
    """The error line of a refused run: exit 2, no traceback, every fragment in it."""
    assert result.code == 2, (result.code, result.out, result.err)
    assert "Traceback" not in result.err and "Traceback" not in result.out
    assert "task(s), results in" not in result.err, "a refused run must not announce itself"
    lines = [line for line in result.err.strip().splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def _nothing_recorded(cli) -> None:
    listed = cli("ls", "runs", "--json")
    assert listed.code == 0 and json.loads(listed.out) == [], listed.out


# --------------------------------------------------------------------------- YAML


def test_a_recursive_anchor_is_one_line_naming_the_file(cli, tmp_path):
    path = tmp_path / "recursive.yaml"
    path.write_text("evaluation: &loop\n  tasks: [*loop]\n")
    line = _one_line(cli("run", "--config", str(path), "--dry-run"), f"{path}:2:")
    assert "*loop" in line and "recursive" in line


def _limit_memory() -> None:
    # Today's loader grew without bound on this document: an address-space limit turns
    # that into a failure of this test instead of the machine's memory.
    limit = 4 * 1024**3
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def test_a_billion_laughs_document_is_refused_without_growing(tmp_path):
    rows = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True):
        rows.append(f"{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]")
    path = tmp_path / "laughs.yaml"
    path.write_text("\n".join(rows) + "\n")
    result = subprocess.run(
        [sys.executable, "-m", "evalfleet", "run", "--config", str(path), "--dry-run"],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=_limit_memory,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: {path}:") and "aliases" in line, line


def test_anchors_within_the_limit_still_load(config):
    from evalfleet import api

    path = config(
        **{
            "params: {parallelism: 2}": "params: &shared {parallelism: 2, limit_samples: 2}",
            "scorer: exact_match": "scorer: exact_match\n      params: *shared",
        }
    )
    (job,) = api.plan_run(path).invocation.jobs
    assert (job.spec["params"]["parallelism"], job.spec["params"]["limit_samples"]) == (2, 2)


def test_merge_keys_are_not_duplicates(tmp_path):
    from evalfleet.config.loader import parse_yaml

    loaded = parse_yaml("base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  x: 3\n", "t.yaml")
    assert loaded["other"] == {"x": 3, "y": 2}


def test_a_duplicate_key_is_one_line_naming_key_file_and_line(cli, config):
    path = config(**{"model_id: sim-model": "model_id: sim-model\n    model_id: other-model"})
    line = _one_line(cli("run", "--config", str(path), "--dry-run"), f"{path}:5:", "'model_id'")
    assert "line 4" in line


def test_a_duplicate_key_in_a_group_file_is_refused(cli, tmp_path, config):
    group = tmp_path / "execution" / "mine.yaml"
    group.parent.mkdir()
    group.write_text("type: local\noutput_dir: a\noutput_dir: b\n")
    path = config(**{"execution: {type: local, ": "defaults:\n  - execution: mine\nexecution: {"})
    _one_line(
        cli("run", "--config", str(path), "--dry-run"), f"{group}:3:", "duplicate key 'output_dir'"
    )


# --------------------------------------------------------------------------- values


@pytest.mark.parametrize(
    ("params", "overrides", "fragments"),
    [
        ("{parallelism: true}", [], ("evaluation.params.parallelism", "boolean true")),
        ("{temperature: false}", [], ("evaluation.params.temperature", "boolean false")),
        ("{parallelism: 2}", ["evaluation.params.n_samples=1e11"], ("evaluation.params.n_samples",
                                                                   "less than or equal to 100000")),
        ("{n_samples: 100000000000}", [], ("evaluation.params.n_samples", "100000")),
        ("{parallelism: 1000000}", [], ("evaluation.params.parallelism", "65536")),
        ("{request_timeout: .inf}", [], ("evaluation.params.request_timeout", "finite")),
        ("{request_timeout: inf}", [], ("evaluation.params.request_timeout", "finite")),
        ("{parallelism: 2}", ["evaluation.params.request_timeout=inf"],
         ("evaluation.params.request_timeout", "finite")),
        ("{max_retries: 100000}", [], ("evaluation.params.max_retries", "1000")),
    ],
)  # fmt: skip
def test_absurd_param_values_are_refused_naming_the_key(cli, config, params, overrides, fragments):
    path = config(**{"{parallelism: 2}": params})
    args = [arg for override in overrides for arg in ("-o", override)]
    _one_line(cli("run", "--config", str(path), "--dry-run", *args), *fragments)


def test_launcher_style_params_are_checked_the_same_way(cli, config):
    path = config(
        **{
            "{parallelism: 2}": "{}\n  nemo_evaluator_config: {config: {params: {parallelism: true}}}"
        }
    )
    _one_line(
        cli("run", "--config", str(path), "--dry-run"),
        "evaluation.tasks[0] params.parallelism",
        "boolean true",
    )


def test_sane_values_and_interpolated_numbers_still_load(config, monkeypatch):
    from evalfleet import api

    monkeypatch.setenv("EVALFLEET_TEST_PARALLELISM", "48")
    path = config(
        **{
            "{parallelism: 2}": "{parallelism: '${oc.env:EVALFLEET_TEST_PARALLELISM}', "
            "n_samples: 64, request_timeout: 3600, max_retries: 25, temperature: 0.6}"
        }
    )
    (job,) = api.plan_run(path).invocation.jobs
    params = job.spec["params"]
    assert (params["parallelism"], params["n_samples"], params["request_timeout"]) == (
        48, 64, 3600.0,
    )  # fmt: skip


# --------------------------------------------------------------------------- URL, output_dir


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("http://127.0.0.1:99999/v1", "port 99999 is out of range"),
        ("http://user:pw@127.0.0.1:99999/v1", "port 99999 is out of range"),
        ("http://127.0.0.1:0/v1", "port 0 is out of range"),
        ("http://127.0.0.1:http/v1", "port http is not a number"),
    ],
)
def test_a_bad_url_port_is_refused_and_nothing_recorded(cli, config, url, fragment):
    # No retries: today's code sent the requests (and recorded the run) before failing.
    result = cli("run", "--config", str(config(url=url)), "-o", "evaluation.params.max_retries=0")
    line = _one_line(result, "target.api_endpoint.url", fragment)
    assert "pw" not in line  # the message shows the port, not the URL's credentials
    _nothing_recorded(cli)


def test_an_output_dir_that_is_a_file_is_refused_and_nothing_recorded(cli, config, tmp_path):
    taken = tmp_path / "results"
    taken.write_text("a file where the results would go\n")
    _one_line(
        cli("run", "--config", str(config())),
        "execution.output_dir",
        f"{taken} is not a directory",
    )
    _nothing_recorded(cli)
    assert taken.read_text() == "a file where the results would go\n"


def _as_a_user() -> list[str]:
    """The command prefix that runs evalfleet as an unprivileged user: root writes into a
    0555 directory anyway."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: cannot make a directory read-only to us")
    return [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory another user can read (pytest's own tmp dirs are private to root)."""
    directory = Path(tempfile.mkdtemp(prefix="evalfleet-ro-"))
    directory.chmod(0o755)
    try:
        yield directory
    finally:
        for path in [directory, *directory.rglob("*")]:
            if path.is_dir():
                path.chmod(0o755)
        shutil.rmtree(directory)


def test_a_read_only_output_dir_is_refused_and_nothing_recorded(shared_dir):
    read_only = shared_dir / "read-only"
    read_only.mkdir()
    home = shared_dir / "home"
    home.mkdir()
    home.chmod(0o777)
    data = _data(shared_dir)
    data.chmod(0o644)
    path = shared_dir / "config.yaml"
    path.write_text(
        CONFIG.format(url="http://127.0.0.1:9/v1", out=read_only / "results", data=data)
    )
    path.chmod(0o644)
    read_only.chmod(0o555)
    env = {**os.environ, "EVALFLEET_HOME": str(home)}
    prefix = _as_a_user()

    def evalfleet(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*prefix, sys.executable, "-m", "evalfleet", *args],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=shared_dir,
            env=env,
        )

    result = evalfleet("run", "--config", str(path))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith(
        f"error: execution.output_dir: {read_only} is not writable "
        f"(cannot create {read_only / 'results'}/"
    ), result.stderr
    listed = evalfleet("ls", "runs", "--json")
    assert listed.returncode == 0 and json.loads(listed.stdout) == [], listed.stdout


# --------------------------------------------------------------------------- environment


def test_an_unset_api_key_variable_is_refused_before_recording(cli, config, monkeypatch):
    monkeypatch.delenv("EVALFLEET_TEST_UNSET_KEY", raising=False)
    path = config(
        **{"model_id: sim-model": "model_id: sim-model\n    api_key_name: EVALFLEET_TEST_UNSET_KEY"}
    )
    _one_line(
        cli("run", "--config", str(path)),
        "target.api_endpoint.api_key_name",
        "EVALFLEET_TEST_UNSET_KEY is not set",
    )
    _nothing_recorded(cli)


def test_an_api_key_given_through_the_config_env_runs(cli, config, monkeypatch):
    """The key's variable may come from the config's env (`host:` another variable)."""
    monkeypatch.delenv("EVALFLEET_TEST_KEY", raising=False)
    monkeypatch.setenv("EVALFLEET_TEST_KEY_SOURCE", "sekret-key")
    with run_simulator(require_api_key="sekret-key", default_answer="2") as sim:
        path = config(
            url=sim.base_url + "/v1",
            **{
                "model_id: sim-model": "model_id: sim-model\n    api_key_name: EVALFLEET_TEST_KEY",
                "params: {parallelism: 2}": "params: {parallelism: 2}\n"
                "  env_vars: {EVALFLEET_TEST_KEY: host:EVALFLEET_TEST_KEY_SOURCE}",
            },
        )
        result = cli("run", "--config", str(path))
    assert result.code in (0, 1), result.err  # answers may be wrong; the run ran
    assert "Traceback" not in result.err
    (row,) = json.loads(cli("ls", "runs", "--json").out)
    assert row["tasks"] == ["adds"]


# --------------------------------------------------------------------------- -t


def test_tasks_option_selects_a_custom_task(cli, config, data):
    path = config(
        **{
            "      scorer: exact_match\n": "      scorer: exact_match\n"
            f"    - {{name: other, dataset: {{path: {data}}}, scorer: contains}}\n"
            "    - name: gsm8k\n"
        }
    )
    for wanted, planned in (("other", ["other"]), ("adds", ["adds"]), ("gsm8k", ["gsm8k"])):
        result = cli("run", "--config", str(path), "--dry-run", "--json", "-t", wanted)
        assert result.code == 0, result.err
        assert [t["task"] for t in json.loads(result.out)["plan"]["tasks"]] == planned
    _one_line(cli("run", "--config", str(path), "--dry-run", "-t", "nope"), "--tasks", "'nope'")


@pytest.mark.parametrize(
    "url",
    ["ftp://user:sekrit-pw@host/v1", "user:sekrit-pw@host:8000/v1", "host/v1?api-key=sekrit-pw"],
)
def test_a_url_that_is_refused_is_shown_without_its_credentials(cli, config, url):
    line = _one_line(cli("run", "--config", str(config(url=url))), "target.api_endpoint.url")
    assert "sekrit-pw" not in line and "***" in line
    _nothing_recorded(cli)
