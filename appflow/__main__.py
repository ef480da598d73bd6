"""`python -m appflow`: the same as the `appflow` command."""

from appflow.cli.entry import main

main()
