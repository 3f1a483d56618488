"""The `labctl` sub-commands, one module per concern; `labctl.cli` loads each lazily."""
