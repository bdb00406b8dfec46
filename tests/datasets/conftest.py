"""The data mirror fixture for download tests."""

from tests.datafixtures import data_mirror  # noqa: F401
