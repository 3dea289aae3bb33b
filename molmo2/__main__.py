"""``python -m molmo2`` runs the CLI."""

import sys

from molmo2.cli import main

sys.exit(main())
