import sys

from engine.app.cli import main

sys.exit(main())
