"""libero plugin for vlabench (work in progress; registers nothing yet)."""
