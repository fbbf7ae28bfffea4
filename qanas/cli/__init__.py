"""The `qanas` command-line interface."""
