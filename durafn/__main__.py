"""``python -m durafn`` is the ``durafn`` command."""

from durafn.cli import main

main()
