"""Fixtures for the endpoint simulator tests: one simulator process shared by the session."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest

from evalfleet.testing import Simulator, SimulatorSettings, run_simulator


@pytest.fixture(scope="session")
def simulator_process() -> Iterator[Simulator]:
    """One simulator subprocess for the session; `sim` restores its defaults per test."""
    with run_simulator() as sim:
        yield sim


@pytest.fixture
def sim(simulator_process: Simulator) -> Simulator:
    """The shared simulator with default settings, a fresh seed and zeroed stats."""
    defaults = dataclasses.asdict(SimulatorSettings())
    defaults["faults"] = list(defaults["faults"])
    simulator_process.control(**defaults)
    simulator_process.reset_stats()
    return simulator_process
