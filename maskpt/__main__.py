"""`python -m maskpt ...`, the same as the `maskpt` command."""

import sys

from maskpt.cli import main

sys.exit(main())
