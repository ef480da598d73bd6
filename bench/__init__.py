"""Benchmarks of appflow against kubectl and helm, each run against its baseline in one invocation."""
