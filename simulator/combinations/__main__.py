import sys

from simulator.combinations.cli import main

sys.exit(main())
