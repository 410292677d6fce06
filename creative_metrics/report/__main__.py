import sys

from creative_metrics.report.cli import main

sys.exit(main())
