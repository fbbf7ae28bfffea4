"""One module per `qanas` subcommand; each exports `COMMAND` (see `qanas.cli.command`)."""
