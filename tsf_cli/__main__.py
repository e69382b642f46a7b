"""``python -m tsf_cli`` runs the ``tsf`` command."""

from .cli import main

main()
