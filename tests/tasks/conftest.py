"""The data mirror fixtures for task tests."""

import pytest

from tests import datafixtures as fx
from tests.datafixtures import data_mirror  # noqa: F401


@pytest.fixture
def pinned_to_fixtures(data_mirror, monkeypatch):  # noqa: F811
    """Sources pinned by sha256 (GPQA, MGSM) accept the fixture bytes the mirror serves."""
    fx.pin_fixture_hashes(monkeypatch)
    return data_mirror
