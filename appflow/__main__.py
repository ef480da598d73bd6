"""`python -m appflow`: the same as the `appflow` command."""

from appflow.cli.main import main

main()
