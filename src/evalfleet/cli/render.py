"""Human-readable output: dry-run plans and tables. The library never prints; this does."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import click


def print_dry_run(run_plan: Any, plan_path: Path) -> None:
    import yaml

    from evalfleet import api

    plan = run_plan.plan
    _heading("Resolved config (secrets redacted)")
    click.echo(yaml.safe_dump(run_plan.config, sort_keys=False, width=100).rstrip())
    _heading(f"Plan: {plan['executor']} invocation {plan['invocation_id']}")
    click.echo(f"output dir: {plan['output_dir']}")
    for line in api.plan_lines(run_plan):
        click.echo(line)
    _heading("Parameters each task's evalfleet eval will use (from its job.json)")
    for job in run_plan.invocation.jobs:
        params = " ".join(f"{key}={value!r}" for key, value in sorted(job.spec["params"].items()))
        resolved = job.spec["task"]
        name = job.task if resolved == job.task else f"{job.task} = {resolved}"
        options = job.spec.get("task_options")
        shown = " ".join(f"{key}={value!r}" for key, value in sorted((options or {}).items()))
        harness = job.spec.get("harness")
        via = f", {harness['package']} {harness['version']}" if harness else ""
        click.echo(
            f"[{job.job_id}] {name} ({job.endpoint_type}{via}): {params}"
            + (f" | options: {shown}" if shown else "")
        )
        if harness:
            click.echo(f"    command: {api.harness_command(job.spec)}")
    click.echo("")
    click.echo(f"Dry run: nothing was created or recorded. Plan written to {plan_path}")


def _heading(text: str) -> None:
    click.echo("")
    click.secho(f"== {text} ==", bold=True)


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
