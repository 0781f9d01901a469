"""Entry point of `python -m analytics`."""
import sys

from .cli import main

sys.exit(main())
