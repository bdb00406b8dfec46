"""Human-readable output: dry-run plans and tables. The library never prints; this does."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import click


def print_dry_run(run_plan: Any, plan_path: Path, *, show_config: bool = False) -> None:
    """The plan first (what would be created, in order), then each job's parameters and
    its job.json as the job would read it; the resolved config only when asked for."""
    import json

    from evalfleet import api

    plan = run_plan.plan
    _heading(f"Plan: {plan['executor']} invocation {plan['invocation_id']}")
    click.echo(f"output dir: {plan['output_dir']}")
    payloads = _job_payloads(run_plan)
    for line in api.plan_lines(run_plan):
        for job_id, payload in payloads.items():
            # A job's script carries its job.json base64: shown decoded below instead.
            line = line.replace(payload, f"<job.json of {job_id}, below>")
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
    for job in run_plan.invocation.jobs:
        _heading(f"job.json of {job.job_id} ({job.task}): {job.job_file}")
        click.echo(json.dumps(_shown_spec(run_plan, job), indent=2, sort_keys=True))
    if show_config:
        import yaml

        _heading("Resolved config (secrets redacted)")
        click.echo(yaml.safe_dump(run_plan.config, sort_keys=False, width=100).rstrip())
    click.echo("")
    hint = "" if show_config else " (the resolved config: add --show-config)"
    # The path ends the output: scripts take the plan file from there.
    click.echo(f"Dry run: nothing was created or recorded{hint}. Plan written to {plan_path}")


def decoded_job_specs(run_plan: Any) -> dict[str, Any]:
    """job id -> its job.json (secrets redacted), for each job whose plan carries it base64
    (Lepton's job script writes it with `base64 -d`); empty when none does."""
    payloads = _job_payloads(run_plan)
    return {
        job.job_id: _shown_spec(run_plan, job)
        for job in run_plan.invocation.jobs
        if job.job_id in payloads
    }


def _shown_spec(run_plan: Any, job: Any) -> Any:
    """A job's job.json as the plan may show it: as `plan_run` hides secrets in the plan."""
    from evalfleet.config.redact import redact, scrub

    return scrub(redact(job.spec), set(run_plan.hidden))


def _job_payloads(run_plan: Any) -> dict[str, str]:
    """job id -> the base64 of its job.json, for those the plan's text contains."""
    import json

    from evalfleet.contract import job_json_base64

    text = json.dumps(run_plan.plan)
    found = {}
    for job in run_plan.invocation.jobs:
        payload = job_json_base64(job.spec)
        if payload in text:
            found[job.job_id] = payload
    return found


def _heading(text: str) -> None:
    click.echo("")
    click.secho(f"== {text} ==", bold=True)


def terminal_width() -> int | None:
    """The width to fit tables to: `COLUMNS`, else the terminal's; None when the output
    is not a terminal (a pipe or a file gets whole lines, to grep)."""
    import os

    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    try:
        return os.get_terminal_size(sys.stdout.fileno()).columns if sys.stdout.isatty() else None
    except (OSError, ValueError, AttributeError):
        return None


def fit_line(text: str, width: int | None) -> str:
    return text if width is None or len(text) <= width else text[: max(width - 1, 0)] + "…"


def print_table(
    rows: list[dict[str, Any]],
    columns: list[str],
    *,
    width: int | None = None,
    shrink: Sequence[str] = (),
) -> None:
    """Plain aligned columns: instant to print and easy to grep (rich costs 100+ ms here).

    With `width`, no line is longer: the `shrink` columns are cut with "…", the widest
    first, down to their heading's width, then the others, last first, then the line."""
    cells = [[str(row.get(column, "")) for column in columns] for row in rows]
    widths = [max([len(column), *(len(r[i]) for r in cells)]) for i, column in enumerate(columns)]
    if width is not None:
        over = sum(widths) + 2 * (len(columns) - 1) - width
        least = [max(len(column), 4) for column in columns]
        shrinkable = [columns.index(c) for c in shrink if c in columns]
        while over > 0:
            # One character at a time from the widest, so that each keeps what it can.
            room = [i for i in shrinkable if widths[i] > least[i]]
            if not room:
                break
            widest = max(room, key=lambda i: widths[i])
            widths[widest] -= 1
            over -= 1
        for i in reversed(range(len(columns))):
            cut = min(over, widths[i] - least[i]) if over > 0 and i not in shrinkable else 0
            if cut > 0:
                widths[i] -= cut
                over -= cut
        cells = [[fit_line(v, w) for v, w in zip(r, widths, strict=True)] for r in cells]

    def line(values: Sequence[str]) -> str:
        text = "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()
        return fit_line(text, width)

    click.secho(
        line([fit_line(c.upper(), w) for c, w in zip(columns, widths, strict=True)]), bold=True
    )
    for row in cells:
        click.echo(line(row))


def print_runs(rows: list[dict[str, Any]], width: int | None = None) -> None:
    """One line per invocation: its overall state, tasks and headline scores."""
    if not rows:
        click.echo("no runs recorded yet")
        return
    this_year = datetime.now().year
    shown = []
    for row in rows:
        created = datetime.fromtimestamp(row["created_at"])
        shown.append(
            {
                **row,
                "id": row["invocation_id"],
                # The year only when it is not this one: the score needs the width.
                "created": created.strftime(
                    "%m-%d %H:%M" if created.year == this_year else "%Y-%m-%d %H:%M"
                ),
                "state": row.get("state", "?") + ("" if row.get("state_checked", True) else "?"),
                "tasks": ",".join(row["tasks"]),
                "score": short_scores(row.get("scores", [])),
            }
        )
    print_table(
        shown,
        ["id", "created", "state", "executor", "model", "tasks", "score"],
        width=width,
        shrink=["model", "tasks", "executor"],
    )


def short_scores(scores: list[dict[str, Any]]) -> str:
    """`pass@1 0.420 (n=164)` for one task (its name is in the tasks column); for several,
    `ifeval 0.31, gsm8k 0.42`: each task's headline metric."""
    if len(scores) == 1:
        (one,) = scores
        n = f" (n={one['n']})" if one.get("n") is not None else ""
        return f"{one['metric']} {one['value']:.3f}{n}"
    return ", ".join(f"{s['task'].rsplit('.', 1)[-1]} {s['value']:.2f}" for s in scores)


def print_run_summary(record: Any, elapsed_s: float) -> None:
    """After a foreground run (stderr, so that stdout ends with the id): each task's
    headline metric with its labelled uncertainty and counts from its results.json, a
    warning when most answers were cut at max_new_tokens, the elapsed time, what next."""
    from evalfleet.contract import headline_text, read_results

    invocation_id = record.invocation_id
    click.echo("", err=True)
    click.secho(
        f"Summary of {invocation_id} (elapsed {_duration(elapsed_s)}):", bold=True, err=True
    )
    width = max((len(job.task) for job in record.jobs), default=0)
    warnings = []
    for job in record.jobs:
        results = read_results(job.output_dir)
        if results is None:
            click.echo(f"  {job.task:{width}}  {job.state}: no results.json here", err=True)
            continue
        click.echo(f"  {job.task:{width}}  {headline_text(results)}", err=True)
        warning = _truncation_warning(job.task, results)
        if warning:
            warnings.append(warning)
    for warning in warnings:
        click.secho(f"warning: {warning}", fg="yellow", err=True)
    click.echo(
        f"next: evalfleet report {invocation_id}  |  evalfleet status {invocation_id}  |  "
        f"evalfleet export {invocation_id} --dest local",
        err=True,
    )


def _truncation_warning(task: str, results: dict[str, Any]) -> str | None:
    counts = results.get("counts") or {}
    truncated = counts.get("truncated") or 0
    answered = counts.get("responses") or counts.get("scored") or 0
    if not answered or truncated * 2 <= answered:
        return None
    limit = (results.get("params") or {}).get("max_new_tokens")
    at = f"max_new_tokens={limit}" if limit else "max_new_tokens (unset: the endpoint's default)"
    raised = 2 * limit if isinstance(limit, int) else 1024
    return (
        f"{task}: {truncated} of {answered} answers were cut at {at} (finish_reason length), "
        f"so the score is of unfinished answers; raise it: "
        f"-o evaluation.tasks.{task.rsplit('.', 1)[-1]}.params.max_new_tokens={raised}"
    )


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
