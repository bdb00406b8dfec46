"""The `evalfleet` command line.

Only click is imported at start-up so that `--help` and `ls runs` stay instant; each
command imports what it needs. Commands raise `EvalFleetError`; `main()` alone prints it
(one line per problem, no traceback) and turns it into the exit code.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable

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
@click.option("-t", "--tasks", "tasks", multiple=True, metavar="NAME", help="Run only these tasks.")
@click.option(
    "-n",
    "--dry-run",
    is_flag=True,
    help="Print the resolved config and exact plan; create nothing.",
)
@click.option("--dry_run", "dry_run_alias", is_flag=True, hidden=True)  # the launcher's docs say so
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
    dry_run: bool,
    dry_run_alias: bool,
    as_json: bool,
    plan_out: str | None,
    config_output: str | None,
    detach: bool,
    keep_endpoint: bool,
    invocation_id: str | None,
) -> None:
    """Deploy (if configured) and evaluate; prints the invocation id.

    Overrides may also follow the options without -o (`run --config-name X a.b=c`)."""
    from evalfleet import api

    dry_run = dry_run or dry_run_alias
    overrides = (*overrides, *extra_overrides)
    if config_mode == "raw" and (config_file is None or config_dir or config_name or overrides):
        raise click.UsageError(
            "--config-mode raw loads one --config FILE as it is: no --config-dir, "
            "--config-name or overrides"
        )
    if (as_json or plan_out) and not dry_run:
        raise click.UsageError("--json and --plan-out go with --dry-run")
    if config_output and dry_run:
        raise click.UsageError("--config-output goes with a run, not --dry-run (see --plan-out)")
    if detach and dry_run:
        raise click.UsageError("--detach and --dry-run do not go together")
    if keep_endpoint and (detach or dry_run):
        raise click.UsageError("--keep-endpoint goes with a foreground run")
    if detach:
        # Validate and plan here, so that a bad config fails in the foreground, then hand
        # the same command (and the planned id) to a background process.
        run_plan = api.plan_run(
            config_file, config_dir=config_dir, config_name=config_name,
            overrides=list(overrides), tasks=list(tasks),
        )  # fmt: skip
        args = ["run"]
        for flag, value in (
            ("--config", config_file),
            ("--config-dir", config_dir),
            ("--config-name", config_name),
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
    run_plan = api.plan_run(
        config_file,
        config_dir=config_dir,
        config_name=config_name,
        overrides=list(overrides),
        tasks=list(tasks),
        invocation_id=invocation_id,
    )
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
        from evalfleet.cli.render import print_table

        print_table(rows, ["job_id", "task", "state", "detail"])
        click.echo(invocation_id)
        if failures:
            raise SystemExit(1)
        return
    path = api.write_plan(run_plan, plan_out)
    if as_json:
        click.echo(json.dumps(run_plan.as_dict(), indent=2))
        return
    from evalfleet.cli.render import print_dry_run

    print_dry_run(run_plan, path)


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
def logs(id: str, follow: bool) -> None:
    """Show an invocation's (or one job's, ID.N) server and task logs."""
    from evalfleet import api

    for line in api.logs(id, follow):
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
@click.option("--json", "as_json", is_flag=True)
@click.option(
    "--builtin", "builtin_only", is_flag=True, help="Only the tasks evalfleet runs itself."
)
def ls_tasks(as_json: bool, builtin_only: bool) -> None:
    """Every task by its launcher name: the ones evalfleet runs itself (the reference each
    reproduces, their data, whether they can run here), then every task of NVIDIA's
    framework packages, which evalfleet runs with the package."""
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
    from evalfleet.cli.render import print_table

    shown = [
        {
            **row,
            "offline": "yes" if row["offline"] else "no",
            "reference": row["reference"] or "none (variant, below)",
        }
        for row in builtin
    ]
    click.secho("Built in (evalfleet's own implementation):", bold=True)
    print_table(
        shown,
        ["name", "endpoint_type", "headline_metric", "samples", "reference", "offline", "runnable"],
    )
    variants = [row for row in builtin if not row["reference"]]
    if variants:
        click.echo("\nevalfleet's own variants reproduce no reference; each differs in:")
        for row in variants:
            click.echo(f"  {row['name']}: {row['differs']}")
    if packaged:
        click.echo("")
        click.secho(
            "Run by their NeMo Evaluator framework package (a virtualenv evalfleet builds once):",
            bold=True,
        )
        print_table(
            [{**row, "judge": "yes" if row["judge"] else ""} for row in packaged],
            ["name", "endpoint_type", "package", "environment", "judge"],
        )


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
    """Invocations recorded on this machine, newest first."""
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
    from evalfleet.cli.render import print_runs

    # A damaged row keeps its line: its id, with what is wrong in place of its tasks.
    print_runs(
        [
            {**row, "tasks": [f"DAMAGED: {row['damaged']}"]} if "damaged" in row else row
            for row in rows
        ]
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
    sys.exit(main())
