"""The `evalfleet` command line.

Only click is imported at start-up so that `--help` and `ls runs` stay instant; each
command imports what it needs. Commands raise `EvalFleetError`; `main()` alone prints it
(one line per problem, no traceback) and turns it into the exit code.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from typing import Any

import click

from evalfleet import __version__
from evalfleet.exceptions import EvalFleetError

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, "-V", "--version", prog_name="evalfleet")
@click.option(
    "--offline", is_flag=True, help="Never download benchmark data (same as EVALFLEET_OFFLINE=1)."
)
def cli(offline: bool) -> None:
    """Deploy a model where your GPUs are, benchmark it, track and export every run."""
    if offline:
        import os

        # An env var, not a flag passed along: the jobs this process starts inherit it.
        os.environ["EVALFLEET_OFFLINE"] = "1"


@cli.command()
@click.option(
    "--config", "config_file", metavar="FILE",
    help="The run config (YAML); group files beside it (execution/, deployment/) extend ours.",
)  # fmt: skip
@click.option(
    "-d", "--config-dir", metavar="DIR",
    help="Directory holding --config-name and its group files (execution/slurm/mine.yaml...).",
)  # fmt: skip
@click.option(
    "-c", "--config-name", metavar="NAME", help="Config file name in --config-dir, .yaml optional."
)  # fmt: skip
@click.option(
    "--config-mode", type=click.Choice(["hydra", "raw"]), default="hydra", show_default=True,
    help="raw: the --config file as saved, without -o overrides (as the launcher's).",
)  # fmt: skip
@click.option(
    "-o", "--override", "overrides", multiple=True, metavar="KEY=VALUE",
    help="Hydra-style override, repeatable: a.b=c, +a.b=c, ++a.b=c, ~a.b, deployment=sglang, "
    "execution=slurm/mycluster.",
)  # fmt: skip
@click.argument("extra_overrides", nargs=-1, metavar="[KEY=VALUE]...")
@click.option(
    "-t", "--tasks", "tasks", multiple=True, metavar="NAME",
    help="Run only these tasks (with --url: the tasks to run).",
)  # fmt: skip
@click.option(
    "--limit", type=click.IntRange(min=1), metavar="N",
    help="At most N samples per task (evaluation.params.limit_samples, over every task's own).",
)  # fmt: skip
@click.option(
    "--url", metavar="URL",
    help="No config file: evaluate the endpoint at URL (with --model and -t TASK), locally.",
)  # fmt: skip
@click.option("--model", metavar="ID", help="With --url: the model id the endpoint serves.")
@click.option(
    "--api-key-name", metavar="VAR", help="With --url: the env var holding the endpoint's key."
)
@click.option(
    "-n",
    "--dry-run",
    is_flag=True,
    help="Print the exact plan and each job's job.json; create nothing.",
)
@click.option("--dry_run", "dry_run_alias", is_flag=True, hidden=True)  # the launcher's docs say so
@click.option("--show-config", is_flag=True, help="With --dry-run: also print the resolved config.")
@click.option(
    "--json", "as_json", is_flag=True, help="With --dry-run: print {config, plan} as JSON."
)
@click.option(
    "--plan-out", metavar="FILE",
    help="Where --dry-run writes plan.json (default: the run's directory on this machine).",
)  # fmt: skip
@click.option(
    "--config-output", metavar="DIR",
    help="Also save the complete config (secrets redacted) as DIR/<id>_config.yml.",
)  # fmt: skip
@click.option("--detach", is_flag=True, help="Return at once; a background process runs it.")
@click.option(
    "--keep-endpoint", is_flag=True,
    help="Leave an endpoint the backend created running after the jobs end (kill deletes it).",
)  # fmt: skip
@click.option("--invocation-id", hidden=True, help="Use this id (how --detach hands its id over).")
def run(
    config_file: str | None,
    config_dir: str | None,
    config_name: str | None,
    config_mode: str,
    overrides: tuple[str, ...],
    extra_overrides: tuple[str, ...],
    tasks: tuple[str, ...],
    limit: int | None,
    url: str | None,
    model: str | None,
    api_key_name: str | None,
    dry_run: bool,
    dry_run_alias: bool,
    show_config: bool,
    as_json: bool,
    plan_out: str | None,
    config_output: str | None,
    detach: bool,
    keep_endpoint: bool,
    invocation_id: str | None,
) -> None:
    """Deploy (if configured) and evaluate; prints the invocation id (its last line).

    Overrides may also follow the options without -o (`run --config-name X a.b=c`).
    Without a config file: `run --url URL --model ID -t TASK [-t TASK...]`."""
    import time

    from evalfleet import api
    from evalfleet.exceptions import UsageError

    started = time.monotonic()
    dry_run = dry_run or dry_run_alias
    overrides = (*overrides, *extra_overrides)
    if url is not None or model is not None:
        if config_file or config_dir or config_name:
            raise UsageError(
                "--url/--model stand for a config file: give them without --config, "
                "--config-dir or --config-name (or put target.api_endpoint in the config)"
            )
        if not (url and model):
            raise UsageError("--url and --model go together (the endpoint and its model id)")
        if not tasks:
            raise UsageError("--url needs the tasks to run: -t TASK (repeatable)")
    elif api_key_name is not None:
        raise UsageError("--api-key-name goes with --url/--model (else: the config's api_key_name)")
    if show_config and not dry_run:
        raise click.UsageError("--show-config goes with --dry-run")
    if config_mode == "raw" and (
        config_file is None or config_dir or config_name or overrides or limit
    ):
        raise click.UsageError(
            "--config-mode raw loads one --config FILE as it is: no --config-dir, "
            "--config-name, overrides or --limit"
        )
    if (as_json or plan_out) and not dry_run:
        raise click.UsageError("--json and --plan-out go with --dry-run")
    if config_output and dry_run:
        raise click.UsageError("--config-output goes with a run, not --dry-run (see --plan-out)")
    if detach and dry_run:
        raise click.UsageError("--detach and --dry-run do not go together")
    if keep_endpoint and (detach or dry_run):
        raise click.UsageError("--keep-endpoint goes with a foreground run")
    endpoint = (url, model, api_key_name) if url and model else None
    if detach:
        # Validate and plan here, so that a bad config fails in the foreground, then hand
        # the same command (and the planned id) to a background process.
        run_plan = _plan_run(
            config_file, config_dir, config_name, list(overrides), list(tasks), limit, endpoint
        )
        args = ["run"]
        for flag, value in (
            ("--config", config_file),
            ("--config-dir", config_dir),
            ("--config-name", config_name),
            ("--url", url),
            ("--model", model),
            ("--api-key-name", api_key_name),
            ("--limit", None if limit is None else str(limit)),
        ):
            args += [flag, value] if value else []
        args += [arg for override in overrides for arg in ("-o", override)]
        args += [arg for task in tasks for arg in ("-t", task)]
        invocation_id = api.detach(run_plan, args)
        _save_config(run_plan, config_output)
        click.echo(
            f"invocation {invocation_id} runs in the background: evalfleet status "
            f"{invocation_id} / logs --follow {invocation_id} / kill {invocation_id}",
            err=True,
        )
        click.echo(invocation_id)
        return
    run_plan = _plan_run(
        config_file, config_dir, config_name, list(overrides), list(tasks), limit, endpoint,
        invocation_id=invocation_id,
    )  # fmt: skip
    for line in run_plan.warnings:  # launcher keys this run ignores, each said once
        click.echo(line, err=True)
    if not dry_run:
        api.check_before_launch(run_plan)  # before saying anything runs
        invocation_id = run_plan.invocation.invocation_id
        click.echo(
            f"invocation {invocation_id}: {len(run_plan.invocation.jobs)} task(s), "
            f"results in {run_plan.invocation.output_dir}",
            err=True,
        )
        _save_config(run_plan, config_output)
        failures = api.launch(run_plan, keep_endpoint=keep_endpoint)
        rows = api.status([invocation_id])
        from evalfleet.cli.render import print_run_summary, print_table

        print_table(rows, ["job_id", "task", "state", "detail"])
        print_run_summary(api.get_invocation(invocation_id), time.monotonic() - started)
        click.echo(invocation_id)  # the last line on stdout: scripts read the id there
        if failures:
            raise SystemExit(1)
        return
    path = api.write_plan(run_plan, plan_out)
    if as_json:
        from evalfleet.cli.render import decoded_job_specs

        shown = run_plan.as_dict()
        decoded = decoded_job_specs(run_plan)
        if decoded:  # the plan carries them base64 (a job's script): also readable here
            shown["job_json"] = decoded
        click.echo(json.dumps(shown, indent=2))
        return
    from evalfleet.cli.render import print_dry_run

    print_dry_run(run_plan, path, show_config=show_config)


def _plan_run(
    config_file: str | None,
    config_dir: str | None,
    config_name: str | None,
    overrides: list[str],
    tasks: list[str],
    limit: int | None,
    endpoint: tuple[str, str, str | None] | None,
    invocation_id: str | None = None,
) -> Any:
    """api.plan_run, with `--url/--model` as a config of their own (the target, the named
    tasks, execution local)."""
    import contextlib
    from pathlib import Path

    from evalfleet import api

    with contextlib.ExitStack() as stack:
        if endpoint is not None:
            import tempfile

            import yaml

            url, model, key_name = endpoint
            api_endpoint = {"url": url, "model_id": model}
            if key_name:
                api_endpoint["api_key_name"] = key_name
            # The loader composes files (groups, defaults lists): this config is one, in a
            # private directory of its own, gone once planned (the plan carries it all).
            directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="evalfleet-")))
            config_file = str(directory / "command_line.yaml")
            generated = {
                "target": {"api_endpoint": api_endpoint},
                "execution": {"type": "local"},
                "evaluation": {"tasks": [{"name": task} for task in tasks]},
            }
            Path(config_file).write_text(yaml.safe_dump(generated, sort_keys=False))
            tasks = []  # they are the config's tasks, not a selection of them
        return api.plan_run(
            config_file, config_dir=config_dir, config_name=config_name,
            overrides=overrides, tasks=tasks, invocation_id=invocation_id, limit=limit,
        )  # fmt: skip


def _save_config(run_plan: object, directory: str | None) -> None:
    if directory is None:
        return
    from evalfleet import api

    path = api.save_config(run_plan, directory)  # type: ignore[arg-type]
    click.echo(f"complete config: {path}", err=True)


@cli.command()
@click.argument("ids", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
def status(ids: tuple[str, ...], as_json: bool) -> None:
    """State of every job of the given invocations (ids or unique prefixes)."""
    from evalfleet import api

    rows = api.status(list(ids))
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    from evalfleet.cli.render import print_table

    print_table(rows, ["job_id", "task", "state", "detail"])


@cli.command()
@click.argument("id")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines.")
@click.option("--task", metavar="NAME", help="Only this task's log (its evaluation).")
@click.option(
    "--server", is_flag=True,
    help="Only the deployment servers' logs (llama.cpp, vLLM...); with --task, both.",
)  # fmt: skip
@click.option(
    "-n", "--tail", type=click.IntRange(min=0), metavar="N",
    help="The last N lines of each log (then new ones with --follow).",
)  # fmt: skip
def logs(id: str, follow: bool, task: str | None, server: bool, tail: int | None) -> None:
    """Show an invocation's (or one job's, ID.N) server and task logs, each line prefixed
    with its log's name."""
    from evalfleet import api

    for line in api.logs(id, follow, task=task, server=server, tail=tail):
        click.echo(line)


@cli.command()
@click.argument("id")
def kill(id: str) -> None:
    """Stop an invocation's jobs and tear down its deployment (safe to repeat)."""
    from evalfleet import api

    stopped = api.kill(id)
    click.echo(f"stopped {', '.join(stopped)}" if stopped else "nothing was running")


@cli.command()
@click.argument("id")
def resume(id: str) -> None:
    """Rerun what did not finish, reusing each task's response cache."""
    from evalfleet import api
    from evalfleet.cli.render import print_table

    invocation_id, failures = api.resume(id)
    print_table(api.status([invocation_id]), ["job_id", "task", "state", "detail"])
    if failures:
        raise SystemExit(1)


@cli.command()
@click.argument("id")
@click.option("--json", "as_json", is_flag=True)
def info(id: str, as_json: bool) -> None:
    """Where an invocation's config, results and logs are."""
    from evalfleet import api

    record = api.get_invocation(id)
    summary = api.invocation_summary(record)
    summary["jobs"] = [
        {
            "job_id": j.job_id,
            "task": j.task,
            "state": j.state,
            "output_dir": j.output_dir,
            "detail": j.detail,
        }
        for j in record.jobs
    ]
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    for key in ("invocation_id", "executor", "deployment_type", "model", "output_dir"):
        click.echo(f"{key:16} {summary[key]}")
    for job in summary["jobs"]:
        click.echo(f"  {job['job_id']:12} {job['task']:14} {job['state']:8} {job['output_dir']}")
        if job["state"] in ("FAILED", "KILLED") and job["detail"]:
            click.echo(f"  {'':12} {job['detail']}")


@cli.command()
@click.argument("ids", nargs=-1)
@click.option("--invocation-id", "invocation_ids", multiple=True, help="Invocation to export.")
@click.option(
    "--exporter", "--dest", "dest", type=click.Choice(["mlflow", "wandb", "local"]),
    default="local", show_default=True, help="Where to export.",
)  # fmt: skip
@click.option("--tracking-uri", help="mlflow: the tracking server [export.mlflow.tracking_uri].")
@click.option("--experiment-name", help="mlflow: the experiment [export.mlflow.experiment_name].")
@click.option("--project", help="wandb: the project [export.wandb.project].")
@click.option("--entity", help="wandb: the entity [export.wandb.entity].")
@click.option("--output-dir", help="local: where summary.json/.csv go [export.local.output_dir].")
def export(
    ids: tuple[str, ...],
    invocation_ids: tuple[str, ...],
    dest: str,
    tracking_uri: str | None,
    experiment_name: str | None,
    project: str | None,
    entity: str | None,
    output_dir: str | None,
) -> None:
    """Export finished tasks to MLflow, W&B or local JSON/CSV files.

    An option not given comes from the first invocation's config, [in brackets].

    Exit code 0: every task exported; 3: the finished ones exported, the others (failed,
    still running) listed on stderr; 1: nothing could be exported.
    """
    from evalfleet import api

    wanted = [*ids, *invocation_ids]
    if not wanted:
        raise click.UsageError("give invocation ids, or --invocation-id ID")
    options = {
        "mlflow": {"tracking_uri": tracking_uri, "experiment_name": experiment_name},
        "wandb": {"project": project, "entity": entity},
        "local": {"output_dir": output_dir},
    }
    for other, values in options.items():
        for name, value in values.items():
            if other != dest and value is not None:
                flag = "--" + name.replace("_", "-")
                raise click.UsageError(f"{flag} goes with --exporter {other}, not {dest}")
    report = api.export(wanted, dest, options[dest])
    summary, *not_exported = report.lines()
    click.echo(summary)
    for line in not_exported:
        click.echo(line, err=True)
    if not report.complete:
        raise SystemExit(3)


@cli.command()
@click.argument("ids", nargs=-1, required=True)
@click.option(
    "-o", "--output", metavar="FILE",
    help="Where to write it [<invocation output dir>/report.html for one id, else ./report.html].",
)  # fmt: skip
@click.option("--open", "open_browser", is_flag=True, help="Open it in the web browser.")
def report(ids: tuple[str, ...], output: str | None, open_browser: bool) -> None:
    """One self-contained HTML page of the invocations' results: metrics with 95% CIs,
    counts, latency and token charts, and a sample browser. Prints its path."""
    from pathlib import Path

    from evalfleet import api
    from evalfleet.report import write_report

    path = write_report([api.get_invocation(id) for id in ids], Path(output) if output else None)
    click.echo(str(path))
    if open_browser:
        import webbrowser

        webbrowser.open(path.as_uri())


@cli.command()
@click.argument("ids", nargs=-1, required=True, metavar="BASELINE CANDIDATE [CANDIDATE]...")
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
@click.option("--html", "html_file", metavar="FILE", help="Also write it as an HTML page.")
@click.option("--force", is_flag=True, help="Compare even when the runs' task settings differ.")
@click.option("--sweep", is_flag=True, help="One models x tasks table of headline metrics.")
@click.option("--markdown", "markdown_file", metavar="FILE", help="With --sweep: write markdown.")
def compare(
    ids: tuple[str, ...],
    as_json: bool,
    html_file: str | None,
    force: bool,
    sweep: bool,
    markdown_file: str | None,
) -> None:
    """Compare runs sample by sample: the first id is the baseline, the others candidates.

    Per shared task and metric: both values, the difference with its paired 95 % CI
    (bootstrap over the shared samples), a p-value (McNemar for right/wrong metrics, a
    paired permutation test otherwise), and the samples that flipped. Refuses runs whose
    task settings differ (prompt, few-shot, max tokens...) unless --force.
    With --sweep: any number of invocations of several models as one models x tasks table.
    """
    from pathlib import Path

    from evalfleet import api
    from evalfleet.cli.render import print_table

    if markdown_file and not sweep:
        raise click.UsageError("--markdown goes with --sweep")
    if sweep:
        from evalfleet.compare.sweep import sweep_markdown, sweep_rows

        data = api.sweep(list(ids))
        if as_json:
            click.echo(json.dumps(data, indent=2))
        else:
            columns, rows = sweep_rows(data)
            print_table(rows, columns)
            for note in data["notes"]:
                click.echo(f"note: {note}")
        if markdown_file:
            Path(markdown_file).write_text(sweep_markdown(data), encoding="utf-8")
            click.echo(f"markdown written to {markdown_file}", err=as_json)
        if html_file:
            from evalfleet.report.html import write_sweep_html

            write_sweep_html(data, Path(html_file))
            click.echo(f"HTML written to {html_file}", err=as_json)
        return
    if len(ids) < 2:
        raise click.UsageError("compare needs a baseline and at least one candidate id")
    from evalfleet.compare import text

    comparison, differences = api.compare(list(ids), force=force)
    for line in differences:
        click.echo(f"warning: settings differ (--force): {line}", err=True)
    if as_json:
        click.echo(json.dumps(comparison, indent=2))
    else:
        for line in text.header_lines(comparison):
            click.echo(line)
        columns, rows = text.table(comparison)
        print_table(rows, columns)
        click.echo(text.RULE)
        for line in text.skipped_lines(comparison):
            click.echo(line)
    if html_file:
        from evalfleet.report.html import write_compare_html

        write_compare_html(comparison, Path(html_file))
        click.echo(f"HTML written to {html_file}", err=as_json)


@cli.command("eval")
@click.option("--job", "job_file", required=True, metavar="JOB_JSON", help="The job spec.")
@click.option("--rescore", is_flag=True, help="Recompute scores from the response cache.")
@click.option("--quiet", "-q", is_flag=True, help="No progress display.")
def eval_(job_file: str, rescore: bool, quiet: bool) -> None:
    """Run one task against one endpoint (what every executor runs).

    Exit code 0: all answered and scored; 3: results written, some samples failed after
    their retries (run again to retry only those); 1: stopped early, answers so far cached.
    """
    from evalfleet import api
    from evalfleet.progress import show_progress

    results, code = api.evaluate_job(
        job_file, rescore=rescore, display=None if quiet else show_progress
    )
    from evalfleet.jobs import summary_line

    click.echo(summary_line(results))
    if code:
        raise SystemExit(code)


@cli.group("ls")
def ls() -> None:
    """List tasks or runs."""


@ls.command("tasks")
@click.option("--json", "as_json", is_flag=True, help="Every field of every task.")
@click.option("--wide", is_flag=True, help="Every column, whole, however wide the terminal.")
@click.option(
    "--builtin", "builtin_only", is_flag=True, help="Only the tasks evalfleet runs itself."
)
def ls_tasks(as_json: bool, wide: bool, builtin_only: bool) -> None:
    """Every task by its launcher name: the ones evalfleet runs itself (the reference each
    reproduces, their data, whether they can run here), then every task of NVIDIA's
    framework packages, which evalfleet runs with the package. The table fits the
    terminal (cut with "…"); --wide or --json for everything."""
    from evalfleet import api

    builtin, packaged = api.task_listing(include_packages=not builtin_only)
    if as_json:
        from evalfleet.datasets import is_cached, sources_for

        for row in builtin:
            row["files"] = [
                {
                    "url": s.url, "revision": s.revision, "sha256": s.sha256,
                    "pinned_by": s.pinned, "license": s.license, "cached": is_cached(s),
                }
                for s in sources_for(str(row["name"]))
            ]  # fmt: skip
        click.echo(json.dumps(builtin + packaged, indent=2))
        return
    from evalfleet.cli.render import fit_line, print_table, terminal_width

    width = None if wide else terminal_width()
    shown = [
        {
            **row,
            "type": row["endpoint_type"],
            "metric": row["headline_metric"],
            "offline": "yes" if row["offline"] else "no",
            "reference": _narrow(row["reference"], width) or "none (variant, below)",
        }
        for row in builtin
    ]
    columns = ["name", "type", "metric", "samples", "offline", "reference"]
    if wide:
        columns = [*columns[:4], "source", "offline", "runnable", "reference"]
    click.secho(fit_line("Built in (evalfleet's own implementation):", width), bold=True)
    # The name is what a config needs: it is cut last.
    print_table(shown, columns, width=width, shrink=["reference", "source", "metric", "type"])
    variants = [row for row in builtin if not row["reference"]]
    if variants:
        click.echo("")
        click.echo(
            fit_line("evalfleet's own variants reproduce no reference; each differs in:", width)
        )
        for row in variants:
            _echo_wrapped(f"  {row['name']}: {row['differs']}", width, indent="      ")
    if packaged:
        click.echo("")
        click.secho(
            fit_line(
                "Run by their NeMo Evaluator framework package (a virtualenv evalfleet builds once):",
                width,
            ),
            bold=True,
        )
        print_table(
            [
                {
                    **row,
                    "type": row["endpoint_type"],
                    "judge": "yes" if row["judge"] else "",
                    "package": _narrow(row["package"], width),
                    "env": row["environment"] if width is None else _SHORT_ENV[row["environment"]],
                }
                for row in packaged
            ],
            ["name", "type", "package", "environment" if wide else "env", "judge"],
            width=width,
            shrink=["env", "package", "type"],
        )


_SHORT_ENV = {"built": "built", "built on first run": "first run", "not runnable": "no"}


def _narrow(package: str, width: int | None) -> str:
    """A package name without the prefix every NVIDIA one shares, in a table cut to fit."""
    return package if width is None else package.removeprefix("nvidia-")


def _echo_wrapped(text: str, width: int | None, indent: str) -> None:
    if width is None:
        click.echo(text)
        return
    import textwrap

    for line in textwrap.wrap(text, width, subsequent_indent=indent, break_on_hyphens=False):
        click.echo(line)


@cli.group("data")
def data() -> None:
    """Benchmark data: prefetch it into the cache for offline use."""


@data.command("pull")
@click.argument("tasks", nargs=-1)
@click.option("--all", "all_tasks", is_flag=True, help="Every task that downloads data.")
def data_pull(tasks: tuple[str, ...], all_tasks: bool) -> None:
    """Download (once) and verify the data of TASKS into the cache (EVALFLEET_CACHE_DIR);
    for a task run by its framework package, build that package's environment there."""
    from evalfleet import datasets
    from evalfleet.exceptions import UsageError
    from evalfleet.tasks.catalog import resolve_task_name

    if all_tasks:
        tasks = tuple(datasets.TASK_SOURCES)
    if not tasks:
        raise click.UsageError("name the tasks to pull, or --all")
    names = []
    for task in tasks:
        try:
            info = resolve_task_name(task)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        if info.engine == "harness" and info.reference is not None:
            from evalfleet.harness.environment import ensure_environment

            package, version = info.reference.package, info.reference.version
            venv = ensure_environment(package, version, log=_prefixed(info.name))
            click.echo(f"{info.name}: {package} {version} environment ready: {venv}")
            continue
        names.append(info.name)
    for name in names:
        pulled = datasets.pull(name)
        if not pulled:
            click.echo(f"{name}: no download needed (data ships in a package)")
        for source, fetched in pulled:
            how = "downloaded" if fetched.downloaded else "cached"
            click.echo(
                f"{name}: {source.label}  {fetched.size:,} B  sha256 {fetched.sha256[:12]}  "
                f"({how}, pinned by {source.pinned})"
            )
    click.echo(f"cache: {datasets.cache_dir()}", err=True)


def _prefixed(prefix: str) -> Callable[[str], None]:
    return lambda line: click.echo(f"{prefix}: {line}", err=True)


@ls.command("runs")
@click.option("--json", "as_json", is_flag=True, help="A JSON list, newest first.")
@click.option("--limit", type=click.IntRange(min=1), help="At most N runs.")
@click.option("--executor", metavar="TYPE", help="Only runs of this execution.type.")
@click.option("--since", metavar="WHEN", help="ISO date, or an age such as 7d or 12h.")
def ls_runs(as_json: bool, limit: int | None, executor: str | None, since: str | None) -> None:
    """Invocations recorded on this machine, newest first: overall state, tasks and each
    finished task's headline score, from what this machine has recorded (no backend is
    asked; a state ending in "?" is the last recorded one: `status ID` asks). The table
    fits the terminal; --json has every field."""
    from evalfleet import api

    if executor is not None and executor not in api.backend_names():
        raise click.BadParameter(
            f"{executor!r} is not one of {', '.join(api.backend_names())}",
            param_hint="--executor",
        )

    rows = api.list_runs(limit=limit, executor=executor, since=_parse_since(since))
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    from evalfleet.cli.render import print_runs, terminal_width

    # A damaged row keeps its line: its id, with what is wrong in place of its tasks.
    print_runs(
        [
            {**row, "state": "DAMAGED", "tasks": [row["damaged"]]} if "damaged" in row else row
            for row in rows
        ],
        width=terminal_width(),
    )


def _parse_since(text: str | None) -> float | None:
    if text is None:
        return None
    import time
    from datetime import datetime

    units = {"m": 60, "h": 3600, "d": 86400, "w": 604800}
    if text[:-1].isdigit() and text[-1:] in units:
        return time.time() - int(text[:-1]) * units[text[-1]]
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise click.BadParameter(
            f"{text!r}: expected an ISO date (2026-11-01) or an age (30m, 12h, 7d, 2w)",
            param_hint="--since",
        ) from None


def main(argv: list[str] | None = None) -> int:
    try:
        cli.main(args=argv, prog_name="evalfleet", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except EvalFleetError as exc:
        for line in str(exc).splitlines() or [type(exc).__name__]:
            click.echo(f"error: {line}", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    return 0


def entry() -> None:  # pragma: no cover - console script
    collect_rarely_while_starting()
    code = main()
    if threading_is_idle():
        exit_without_teardown(code)
    sys.exit(code)


def collect_rarely_while_starting() -> None:
    """Collect cycles every 50,000 allocations, not every 700, from here on: a command's
    imports (pydantic building the config models above all) allocate hundreds of thousands
    of objects that all live on, and at the default thresholds the collector ran ~100 times
    over them, ~15 ms of each `evalfleet run` before its first request. Cycles are still
    collected, in larger batches; a job's engine sets the same thresholds for itself."""
    import gc

    gc.set_threshold(50_000, 20, 10)


def threading_is_idle() -> bool:
    import threading

    return threading.active_count() == 1


def exit_without_teardown(code: int) -> None:
    """End the process the way the interpreter would, minus freeing every object one by one:
    after a run that teardown costs 45-55 ms (2-4 ms without it), ~1 % of a short run.
    Only when no other thread runs (the interpreter would wait for it); exit handlers run
    as usual, so logging and weakref finalizers still flush and clean up."""
    import atexit

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (BrokenPipeError, ValueError):  # `evalfleet ls runs | head`; a closed stream
            code = code or 1  # what the reader did not get is lost, as Python's own exit says
    os._exit(code)
