"""Micro-benchmarks of the gateway hot path (pytest-benchmark; `./dev bench` times them)."""
