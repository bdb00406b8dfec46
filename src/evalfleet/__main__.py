from evalfleet.cli.main import entry

entry()
