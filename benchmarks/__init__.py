"""Performance measurements (not tests); `python -m benchmarks.report` writes BENCHMARKS.md."""
