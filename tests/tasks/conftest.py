"""The data mirror fixture for task tests."""

from tests.datafixtures import data_mirror  # noqa: F401
