"""``python -m moviead`` runs the CLI."""

import sys

from moviead.cli import main

sys.exit(main())
