"""``python -m mediaformers.cli`` = the ``mediaformers`` command (as the single cli.py module ran)."""
import sys

from . import main

sys.exit(main())
