"""`python -m numalex ...` is the same as the `numalex` command."""
import sys

from .cli import main

sys.exit(main())
