"""``python -m vlabench.cli``, as the console script."""

from vlabench.cli import main

main()
