import sys

from cartpole_core.cli import main

sys.exit(main())
