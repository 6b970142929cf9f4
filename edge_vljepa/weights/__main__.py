"""`python -m edge_vljepa.weights inspect|assemble` (edge_vljepa/weights/cli.py)."""

import sys

from edge_vljepa.weights.cli import main

sys.exit(main())
