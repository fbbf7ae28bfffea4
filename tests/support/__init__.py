"""Helpers shared by the tests: model builders, drivers, cases and fakes (fixtures live in
tests/conftest.py)."""
