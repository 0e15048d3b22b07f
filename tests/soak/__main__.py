"""``python -m tests.soak --runs 300``: the soak run with its own servers (see `tests.soak.soak`)."""

import sys

from tests.soak.soak import main

sys.exit(main())
