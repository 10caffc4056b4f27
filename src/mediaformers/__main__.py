"""``python -m mediaformers`` = the ``mediaformers`` command."""
import sys

from .cli import main

sys.exit(main())
