"""How a batch job gets the evalfleet that planned it (unless `execution.evalfleet_command`
names one the cluster has).

The executor copies the planner's own wheel (`executors/wheel.py`) into the invocation's
directory on the cluster, next to the batch script. The script's bootstrap checks its
sha256, then installs it, once per wheel and python3 version and under `flock`, into a
virtualenv in the evalfleet cache dir as the node sees it
(`${EVALFLEET_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/evalfleet}/venvs/<version>-py<X.Y>`),
made with `python3 -m venv`; pip brings the dependencies from the cluster's usual index.
Every later job of any invocation planned by the same evalfleet reuses that virtualenv.
"""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING, Any

from evalfleet.exceptions import ConfigError
from evalfleet.executors import wheel as wheels
from evalfleet.executors.wheel import VERSION_CHECK

if TYPE_CHECKING:
    from evalfleet.contract import Invocation

CACHE_DIR = "${EVALFLEET_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/evalfleet}"
READY = ".evalfleet-ready"


def shipped_wheel() -> wheels.Wheel:
    try:
        return wheels.own_wheel()
    except wheels.WheelError as exc:
        raise ConfigError(
            f"execution.evalfleet_command: {exc}; or name the cluster's own evalfleet here"
        ) from None


def wheel_destination(inv: Invocation, built: wheels.Wheel) -> str:
    """Where the wheel is copied on the cluster: the invocation's directory."""
    return f"{inv.output_dir}/{built.filename}"


def wheel_plan(inv: Invocation) -> dict[str, Any]:
    """What the dry run shows: which wheel, where it is copied, where it is installed."""
    built = shipped_wheel()
    return {
        **built.describe(),
        "copied_to": wheel_destination(inv, built),
        "installed_in": f"{CACHE_DIR}/venvs/{built.version}-py<python3 version> (on the node)",
    }


def bootstrap_script(inv: Invocation) -> str:
    """The batch script's lines that install the wheel (once) and set `evalfleet_command`."""
    built = shipped_wheel()
    q = shlex.quote
    return f"""\
# evalfleet {built.version}: the planner's own wheel, copied next to this script, installed
# once per wheel and python3 version (under flock) in a virtualenv in the evalfleet cache.
evalfleet_wheel={q(wheel_destination(inv, built))}
evalfleet_bootstrap() {{
  local py venv start=$SECONDS
  py=$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])') || {{
    echo "evalfleet: python3 is needed on the node to install evalfleet" >&2
    return 1
  }}
  venv={CACHE_DIR}/venvs/{q(built.version)}-py$py
  if [[ ! -e "$venv/{READY}" ]]; then
    mkdir -p "${{venv%/*}}" || return 1
    (
      flock 9 || exit 1
      [[ -e "$venv/{READY}" ]] && exit 0
      echo "{built.sha256}  $evalfleet_wheel" | sha256sum --check --quiet - || exit 1
      echo "evalfleet: installing $evalfleet_wheel into $venv" >&2
      rm -rf "$venv"
      python3 -m venv "$venv" || exit 1
      "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \\
        "$evalfleet_wheel" >&2 || exit 1
      touch "$venv/{READY}"
    ) 9>"$venv.lock" || {{
      echo "evalfleet: cannot install evalfleet into $venv" >&2
      return 1
    }}
    echo "evalfleet: evalfleet ready in $venv after $((SECONDS - start))s" >&2
  fi
  "$venv/bin/python" -c {q(VERSION_CHECK)} {q(built.version)} >&2 || return 1
  evalfleet_command=("$venv/bin/python" -m evalfleet)
}}
evalfleet_bootstrap || exit 1
"""
