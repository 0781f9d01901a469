"""Benchmarks of the Rooms API (`python -m benchmarks.api`), kept out of the pytest suite."""
