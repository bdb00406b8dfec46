"""A store row someone (or something) damaged: shown as damaged, the rest keeps working."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from evalfleet.exceptions import StoreError
from evalfleet.store import InvocationStore, NewJob


def _record(store: InvocationStore, invocation_id: str) -> None:
    store.create_invocation(
        invocation_id=invocation_id,
        executor="local",
        deployment_type="none",
        model="m",
        output_dir=f"/results/{invocation_id}",
        config={"execution": {"type": "local"}},
        jobs=[NewJob(task="gsm8k", output_dir=f"/results/{invocation_id}/gsm8k")],
    )


def _damage(store: InvocationStore, sql: str, *params: object) -> None:
    """Write to the file behind the store's back, as a crash, an old tool or a hand would."""
    with sqlite3.connect(store.path) as conn:
        conn.execute(sql, params)


DAMAGE = {
    "config is not JSON": (
        "UPDATE invocations SET config = '{\"execution\": ' WHERE id = ?",
        "config is not valid JSON",
    ),
    "null handle": (
        "UPDATE invocations SET handle = 'null' WHERE id = ?",
        "handle is not a JSON object",
    ),
    "config is a list": (
        "UPDATE invocations SET config = '[1]' WHERE id = ?",
        "config is not a JSON object",
    ),
    "job handle is not JSON": (
        "UPDATE jobs SET handle = 'nope' WHERE invocation_id = ?",
        "job bad00000.0: handle is not valid JSON",
    ),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_row_is_listed_as_damaged_and_the_others_stay_usable(store, damage) -> None:
    sql, what = DAMAGE[damage]
    _record(store, "good0000")
    _record(store, "bad00000")
    _record(store, "good1111")
    _damage(store, sql, "bad00000")

    listed = {record.invocation_id: record for record in store.list_invocations()}
    assert set(listed) == {"good0000", "bad00000", "good1111"}
    assert what in listed["bad00000"].damaged
    assert "\n" not in listed["bad00000"].damaged
    assert listed["good0000"].damaged == "" and listed["good1111"].damaged == ""
    assert listed["good0000"].config == {"execution": {"type": "local"}}

    # Commands on the damaged id: one line naming it and what is wrong.
    for call in (
        lambda: store.get("bad00000"),
        lambda: store.get("bad0"),
        lambda: store.get_job("bad00000.0"),
    ):
        with pytest.raises(StoreError) as info:
            call()
        message = str(info.value)
        assert "bad00000" in message and what in message and "\n" not in message

    # Every other row and command keeps working.
    assert store.get("good0000").handle == {}
    assert store.update_job("good1111.0", state="RUNNING").state == "RUNNING"
    assert store.get_job("good1111.0").state == "RUNNING"


def test_updating_a_damaged_handle_replaces_it(store) -> None:
    """A launcher recording a handle must not fail on what it cannot read: what it knows now
    is written, and the row is readable again."""
    _record(store, "bad00000")
    _damage(store, "UPDATE invocations SET handle = 'null' WHERE id = ?", "bad00000")
    _damage(store, "UPDATE jobs SET handle = '{' WHERE invocation_id = ?", "bad00000")
    store.update_job("bad00000.0", state="RUNNING", handle={"pid": 12})
    store.update_invocation_handle("bad00000", {"runner_pid": 34})
    record = store.get("bad00000")
    assert record.damaged == ""
    assert record.handle == {"runner_pid": 34}
    assert record.jobs[0].handle == {"pid": 12}


def test_cli_ls_runs_shows_the_damaged_row_and_commands_on_it_give_one_line(cli) -> None:
    with InvocationStore() as store:
        _record(store, "good0000")
        _record(store, "bad00000")
        _damage(store, "UPDATE invocations SET config = 'x' WHERE id = ?", "bad00000")

    table = cli("ls", "runs")
    assert table.code == 0, table.err
    (bad_line,) = [line for line in table.out.splitlines() if "bad00000" in line]
    assert "damaged" in bad_line.lower() and "config is not valid JSON" in bad_line
    assert any("good0000" in line for line in table.out.splitlines())

    listed = cli("ls", "runs", "--json")
    assert listed.code == 0, listed.err
    rows = {row["invocation_id"]: row for row in json.loads(listed.out)}
    assert "config is not valid JSON" in rows["bad00000"]["damaged"]
    assert "damaged" not in rows["good0000"]

    for command in (["status", "bad00000"], ["info", "bad00000"], ["kill", "bad00000"],
                    ["resume", "bad00000"], ["logs", "bad00000"]):  # fmt: skip
        result = cli(*command)
        assert result.code == 1, (command, result)
        (line,) = result.err.strip().splitlines()
        assert (
            line.startswith("error: ") and "bad00000" in line and "config is not valid JSON" in line
        )
    assert cli("info", "good0000").code == 0
    assert cli("status", "good0000").code == 0


def test_store_path_in_the_message(store: InvocationStore, tmp_path: Path) -> None:
    _record(store, "bad00000")
    _damage(store, "UPDATE invocations SET handle = '' WHERE id = ?", "bad00000")
    with pytest.raises(StoreError, match=str(store.path)):
        store.get("bad00000")
