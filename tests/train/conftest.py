"""The training tests' datasets: tiny generated ones (tests/synthetic_data.py)."""

from synthetic_data import people_data, shapes160, shapes_data  # noqa: F401 (fixtures)
