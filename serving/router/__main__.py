"""``python -m serving.router``: the router HTTP server."""
import sys

from serving.router.server import main

sys.exit(main())
