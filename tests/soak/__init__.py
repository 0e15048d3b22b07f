"""The soak run: many runs with injected faults through the real Agent Server (see `tests.soak.soak`)."""
