"""The `appflow` command line."""
