"""``python -m serving.standin``: the model server stand-in (see :mod:`serving.standin.cli`)."""
import sys

from serving.standin.cli import main

sys.exit(main())
