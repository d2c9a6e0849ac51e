"""CLI commands that are big enough for their own module; `sfteval.cli` registers them."""
