"""Benchmarks of the series' speed claims: `make bench` runs them all (see benchmarks/run.py)."""
