"""Serve the emulator until SIGTERM/SIGINT; the command line."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from aiohttp import web

from evalfleet.testing.lepton._app import build_app
from evalfleet.testing.lepton._image import job_image
from evalfleet.testing.lepton._workspace import Workspace


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m evalfleet.testing.lepton",
        description="A local emulator of a DGX Cloud Lepton workspace API (legacy routes).",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port")
    p.add_argument("--token", required=True, help="the workspace token clients must send")
    p.add_argument("--workspace", default="emulated", help="workspace id (default: emulated)")
    p.add_argument(
        "--model-server", metavar="URL",
        help="proxy every endpoint to this OpenAI-compatible server (default: start an "
        "endpoint simulator per deployment)",
    )  # fmt: skip
    p.add_argument("--state-dir", metavar="DIR", help="where jobs get their working dirs")
    p.add_argument("--ready-after", type=float, default=0.5, metavar="SECONDS")
    p.add_argument("--archive-after", type=float, default=None, metavar="SECONDS",
                   help="archive finished jobs after this long (default: their ttl)")  # fmt: skip
    p.add_argument(
        "--job-python", metavar="PYTHON",
        help="the jobs' image: an interpreter whose environment has evalfleet's dependencies "
        "(default: one built once from this environment's versions, without evalfleet)",
    )  # fmt: skip
    return p


async def _serve(args: argparse.Namespace, root: Path) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    job_python = Path(args.job_python) if args.job_python else job_image()
    workspace = Workspace(args.workspace, root, "", args.model_server, job_python)
    workspace.faults.ready_after = args.ready_after
    workspace.faults.archive_after = args.archive_after
    runner = web.AppRunner(build_app(workspace, args.token), access_log=None,
                           handle_signals=False, shutdown_timeout=0.5)  # fmt: skip
    await runner.setup()
    try:
        site = web.TCPSite(runner, args.host, args.port)
        await site.start()
        port = runner.addresses[0][1]
        workspace.external_base = f"http://{args.host}:{port}"
        sys.stdout.write(f"READY http://{args.host}:{port}/api/v2/workspaces/{args.workspace}\n")
        sys.stdout.flush()
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="lepton-emulator-") as default_root:
        root = Path(args.state_dir or default_root)
        asyncio.run(_serve(args, root))
    return 0
