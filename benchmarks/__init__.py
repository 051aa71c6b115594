"""Benchmarks: scripts that time the hot paths against a reference in the same run (see README.md)."""
