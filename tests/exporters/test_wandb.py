"""Export to Weights & Biases in offline mode, checked in the run files wandb writes.

An offline run is a `.wandb` file: W&B's LevelDB-style log of protobuf `Record`s (32 KiB
blocks, a 7-byte header per chunk). Reading it back is how a later `wandb sync` sees it.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from tests.exporters.conftest import free_port

pytest.importorskip("wandb", reason="needs the wandb client: pip install 'evalfleet[wandb]'")

_BLOCK = 32 * 1024


def records(path: Path) -> list:
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    position, pending, out = 7, b"", []
    while position + 7 <= len(data):
        left = _BLOCK - position % _BLOCK
        if left < 7:  # the rest of a block too small for a header is padding
            position += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[position : position + 7])
        pending += data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind in (1, 4):  # a whole record, or the last chunk of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            out.append(record)
            pending = b""
    return out


def offline_runs(root: Path) -> dict[str, list]:
    """Run id -> its records, over every offline run directory under `root`/wandb."""
    runs: dict[str, list] = {}
    for path in sorted(root.glob("wandb/offline-run-*/run-*.wandb")):
        runs.setdefault(path.stem.removeprefix("run-"), []).extend(records(path))
    return runs


def summary_of(run_records: list) -> dict[str, object]:
    values: dict[str, object] = {}
    for record in run_records:
        if record.WhichOneof("record_type") == "summary":
            for item in record.summary.update:
                key = item.key or "/".join(item.nested_key)
                values[key] = json.loads(item.value_json)
    return values


@pytest.fixture(autouse=True)
def offline_wandb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    for name in ("WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(name, str(tmp_path / "wandb-home" / name.lower()))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)


def test_offline_runs_hold_metrics_config_and_artifacts(cli, run_invocation):
    inv = run_invocation(failing=True).invocation_id
    result = cli("export", inv, "--dest", "wandb", "--project", "evals")
    assert result.code == 3, result.err
    assert f"wandb: exported 2 task(s) of {inv}" in result.out
    assert f"not exported {inv}.2 broken: FAILED" in result.err
    runs = offline_runs(Path.cwd())
    assert sorted(runs) == [f"evalfleet-{inv}-0", f"evalfleet-{inv}-1"]
    for index, task in enumerate(["adds", "adds_exact"]):
        run_records = runs[f"evalfleet-{inv}-{index}"]
        (run,) = [r.run for r in run_records if r.WhichOneof("record_type") == "run"]
        assert (run.project, run.run_group, run.display_name) == (
            "evals",
            inv,
            f"eval-{inv}-{task}",
        )
        config = {item.key: json.loads(item.value_json) for item in run.config.update}
        assert config["model_id"] == "sim-model" and config["job_id"] == f"{inv}.{index}"
        assert config["executor"] == "local" and config["temperature"] == "0.0"
        results = json.loads((Path("results") / inv / task / "results.json").read_text())
        accuracy = results["metrics"]["accuracy"]
        summary = summary_of(run_records)
        assert summary["accuracy"] == pytest.approx(accuracy["value"])
        assert summary["accuracy_stderr"] == pytest.approx(accuracy["stderr"])
        (artifact,) = [r.artifact for r in run_records if r.WhichOneof("record_type") == "artifact"]
        assert artifact.name == f"{inv}-{task}" and artifact.type == "evaluation_result"
        assert {entry.path for entry in artifact.manifest.contents} == {
            "results.json", "samples.jsonl", "config.yaml",
        }  # fmt: skip


def test_exporting_again_reuses_the_run_ids(cli, run_invocation):
    inv = run_invocation().invocation_id
    for _ in range(2):
        assert cli("export", inv, "--dest", "wandb").code == 0
    run_dirs = sorted(Path("wandb").glob("offline-run-*"))
    # Offline, each export is its own directory; they carry the same two run ids, so a
    # `wandb sync` updates two runs instead of creating four.
    assert len(run_dirs) == 4
    assert sorted(offline_runs(Path.cwd())) == [f"evalfleet-{inv}-0", f"evalfleet-{inv}-1"]


def test_an_unreachable_server_online_is_one_line_and_a_failure(cli, run_invocation, monkeypatch):
    inv = run_invocation().invocation_id
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{free_port()}")
    result = cli("export", inv, "--dest", "wandb")
    assert result.code == 1 and result.out == ""
    (line,) = result.err.strip().splitlines()
    assert line.startswith("error: W&B server http://127.0.0.1:") and "not reachable" in line
    assert "x" * 40 not in line
    assert not Path("wandb").exists()
