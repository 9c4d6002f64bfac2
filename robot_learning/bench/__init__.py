"""Benchmarks behind `robot-learning bench ...` (numbers go to bench.json and BENCHMARKS.md)."""
