"""Benchmarks: run by hand (``python -m tests.benchmarks.bench_calls``), never by pytest."""
