"""`python -m golf_core.train --preset tiny --data DIR --out DIR` (or under torchrun -m)."""
import sys

from golf_core.train.cli import main

sys.exit(main())
