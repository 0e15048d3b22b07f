"""``python -m bench``: run the benchmark suite (see `bench.suite`)."""

from bench.suite import main

raise SystemExit(main())
