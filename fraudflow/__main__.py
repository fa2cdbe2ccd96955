import sys

from fraudflow.cli import main

sys.exit(main())
