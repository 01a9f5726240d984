"""``python -m ssfbench.cli``: the same as ``python -m ssfbench`` and the ``ssfbench`` command."""

from ssfbench.cli import main

main()
