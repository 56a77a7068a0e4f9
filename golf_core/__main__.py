import sys

from golf_core.cli import main

sys.exit(main())
