"""Sub-commands of the `numalex` CLI, one module each (see numalex/cli.py)."""
