"""The CLI tests' datasets: tiny generated ones (tests/synthetic_data.py)."""

from synthetic_data import people_data, shapes_data  # noqa: F401 (fixtures)
