"""Reading the Agent Server's "Slow graph load" lines back; the scaling section's cross-user check."""

from __future__ import annotations

import json
from pathlib import Path

from bench._agent_server import SlowLoad, slow_loads
from bench.scaling import leaks

RUN = "01a23df9-66ca-73de-85e7-30826caf5de1"
ERROR = (
    "\x1b[2m2026-12-03T22:14:46.834343Z\x1b[0m [\x1b[31m\x1b[1merror    \x1b[0m] \x1b[1mSlow graph load. "
    "Accessing graph 'bridge' took 1479.92ms. Move expensive initialization (API clients, DB connections, "
    "model loading) from graph factory if you are seeing API slowness.\x1b[0m [\x1b[0m\x1b[1m\x1b[34m"
    "langgraph_api.graph\x1b[0m]\x1b[0m \x1b[36melapsed_ms\x1b[0m=\x1b[35m1479.92\x1b[0m "
    f"\x1b[36mgraph_id\x1b[0m=\x1b[35mbridge\x1b[0m \x1b[36mrun_id\x1b[0m=\x1b[35m{RUN}\x1b[0m"
)
WARNING = (
    "2026-12-03T22:14:47Z [warning  ] Slow graph load. Accessing graph 'peer' took 120.5ms. "
    "Move expensive initialization [langgraph_api.graph] elapsed_ms=120.5 graph_id=peer"
)


def test_slow_loads_are_read_with_level_graph_time_and_run(tmp_path: Path) -> None:
    log = tmp_path / "agent-server.log"
    log.write_text("\n".join(["Starting queue with shared loop", ERROR, WARNING, "GET /ok 200"]) + "\n")
    assert slow_loads(log) == [
        SlowLoad("error", "bridge", 1479.92, RUN),
        SlowLoad("warning", "peer", 120.5, None),
    ]


def test_leaks_counts_calls_with_the_wrong_user_or_a_shared_process(tmp_path: Path) -> None:
    def call(run: str, user: str, pid: int) -> str:
        meta = {"dev.mcpbridge/run_id": run, "dev.mcpbridge/user_id": user}
        return json.dumps({"tool": "whoami", "pid": pid, "meta": meta})

    records = tmp_path / "calls.jsonl"
    users = {"r1": "alice", "r2": "alice", "r3": "bob"}
    records.write_text(
        "\n".join([call("r1", "alice", 1), call("r2", "alice", 1), call("r3", "bob", 2)]) + "\n"
    )
    assert leaks(records, users) == (0, 3)
    records.write_text("\n".join([call("r1", "alice", 1), call("r3", "bob", 1), call("r2", "bob", 2)]) + "\n")
    assert leaks(records, users) == (3, 3)  # r1 and r3 share a process; r2 carried bob for alice's run
