"""``python -m fraudflow.cli.bench state-child ...``: the state section's child process."""

import sys

from fraudflow.cli.bench import child

sys.exit(child(sys.argv[1:]))
