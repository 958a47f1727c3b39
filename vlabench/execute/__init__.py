"""Executing jobs: executors (inline, processes, Ray) with one retry policy, the in-process job
runner they share (local), and the runner that is the store's single writer (runner)."""
