"""Human-readable output: dry-run plans and tables. The library never prints; this does."""

from __future__ import annotations

import json
import shlex
from datetime import datetime
from pathlib import Path
from typing import Any

import click


def print_dry_run(run_plan: Any, plan_path: Path) -> None:
    import yaml

    plan = run_plan.plan
    _heading("Resolved config (secrets redacted)")
    click.echo(yaml.safe_dump(run_plan.config, sort_keys=False, width=100).rstrip())
    _heading(f"Plan: {plan['executor']} invocation {plan['invocation_id']}")
    click.echo(f"output dir: {plan['output_dir']}")
    kind = plan["executor"]
    if kind == "local":
        _local(plan)
    elif kind == "lepton":
        _lepton(plan)
    elif kind == "slurm":
        _slurm(plan)
    click.echo("")
    click.echo(f"Dry run: nothing was created or recorded. Plan written to {plan_path}")


def _heading(text: str) -> None:
    click.echo("")
    click.secho(f"== {text} ==", bold=True)


def _local(plan: dict[str, Any]) -> None:
    server = plan.get("server")
    if server:
        click.echo(f"\n1. start the {server['type']} server (log: {server['log']}):")
        click.echo(f"   {server['command']}")
        for name, value in server["env"].items():
            click.echo(f"   env {name}={value}")
        click.echo(f"2. wait up to {server['readiness_timeout_s']} s for {server['health_url']}")
    step = 3 if server else 1
    click.echo(f"\n{step}. run the tasks ({plan['mode']}):")
    for task in plan["tasks"]:
        click.echo(f"   [{task['job_id']}] {task['command']}")
    if server:
        click.echo(f"\n{step + 1}. stop the server: {server['stop']}")


def _lepton(plan: dict[str, Any]) -> None:
    deployment = plan.get("deployment")
    step = 1
    if deployment:
        click.echo(f"\n{step}. {deployment['method']} {deployment['path']}")
        click.echo(_indent(json.dumps(deployment["body"], indent=2)))
        step += 1
        readiness = plan.get("readiness")
        if readiness:
            click.echo(
                f"\n{step}. poll {readiness['poll']} until {readiness['until']} "
                f"(up to {readiness['timeout_s']} s), then probe {readiness['health_probe']}"
            )
            step += 1
    for job in plan["jobs"]:
        click.echo(f"\n{step}. {job['method']} {job['path']}  ({job['job_id']}, {job['task']})")
        click.echo(_indent(json.dumps(job["body"], indent=2)))
        step += 1
    for teardown in plan.get("teardown") or []:
        click.echo(f"\n{step}. when the last job ends: {teardown}")
        step += 1


def _slurm(plan: dict[str, Any]) -> None:
    for script in plan["scripts"]:
        command = shlex.join(script["command"])
        click.echo(
            f"\n# {script['name']}  (jobs {', '.join(script['job_ids'])}; submit: {command})"
        )
        click.echo(script["text"].rstrip())


def _indent(text: str, prefix: str = "   ") -> str:
    return "\n".join(prefix + line for line in text.splitlines())


def print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    """Plain aligned columns: instant to print and easy to grep (rich costs 100+ ms here)."""
    cells = [[str(row.get(column, "")) for column in columns] for row in rows]
    widths = [max([len(column), *(len(r[i]) for r in cells)]) for i, column in enumerate(columns)]
    click.secho(
        "  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip(),
        bold=True,
    )
    for row in cells:
        click.echo("  ".join(value.ljust(w) for value, w in zip(row, widths, strict=True)).rstrip())


def print_runs(rows: list[dict[str, Any]]) -> None:
    if not rows:
        click.echo("no runs recorded yet")
        return
    shown = [
        {
            **row,
            "created": datetime.fromtimestamp(row["created_at"]).strftime("%Y-%m-%d %H:%M"),
            "tasks": ",".join(row["tasks"]),
        }
        for row in rows
    ]
    print_table(shown, ["invocation_id", "created", "executor", "model", "tasks"])
