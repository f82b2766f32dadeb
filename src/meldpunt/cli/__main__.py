"""`python -m meldpunt.cli`: the same as the `meldpunt` command."""

from meldpunt.cli import main

main()
