"""Examples of mcpbridge, each runnable on its own; ``agent.py``, ``auth.py``, ``serve_demo.py``: the demo."""
