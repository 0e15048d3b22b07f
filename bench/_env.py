"""What every section of the suite shares: repetition counts, the server processes, the adapters driver."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from bench._adapters import AdaptersDriver
from bench._processes import ROOT, HttpServerProcess, server_args
from mcpbridge import HttpServer, StdioServer

ARGS = {"text": "hi"}
"""The arguments of every timed ``echo`` call."""


@dataclass(frozen=True, slots=True)
class Sizes:
    """How many repetitions each metric takes."""

    calls: int = 500
    call_rounds: int = 25
    warmup: int = 30
    adapters_default_stdio: int = 20
    adapters_default_http: int = 60
    batches: int = 100
    reads: int = 200
    naive_reads: int = 20
    connects: int = 30
    pool_rounds: int = 10
    pool_warm_per_round: int = 20
    memory_runs: int = 50
    memory_processes: int = 3
    serve_calls: int = 200
    e2e_runs: int = 13
    """Tool-calling runs of each peer through ``langgraph dev`` (the first one reported apart)."""
    e2e_rounds: int = 6
    scaling_runs: int = 8
    """Runs of each user in each of the Agent Server's modes."""
    scaling_jobs: tuple[int, ...] = (2, 4)
    """The ``N_JOBS_PER_WORKER`` values tried with isolated loops."""


FULL = Sizes()
QUICK = Sizes(
    calls=8,
    call_rounds=2,
    warmup=2,
    adapters_default_stdio=2,
    adapters_default_http=2,
    batches=2,
    reads=8,
    naive_reads=2,
    connects=2,
    pool_rounds=2,
    pool_warm_per_round=2,
    memory_runs=4,
    memory_processes=1,
    serve_calls=8,
    e2e_runs=4,
    e2e_rounds=2,
    scaling_runs=3,
    scaling_jobs=(2,),
)


@dataclass(slots=True)
class Env:
    """The running servers and peers of one suite run."""

    sizes: Sizes
    workdir: Path
    http: HttpServerProcess
    """The bench server over HTTP that every HTTP peer calls."""
    http2: HttpServerProcess
    """A second one, for runs with two HTTP servers."""
    delayed: list[HttpServerProcess]
    """Eight servers that answer their handshake 100 ms late."""
    adapters: AdaptersDriver | None
    adapters_skipped: str | None = None
    langchain_mcp: AdaptersDriver | None = None
    """``langchain.mcp`` (LangChain's own adapter), driven in its venv."""
    langchain_mcp_skipped: str | None = None


def stdio_server(name: str = "bench", *, events: Path | None = None) -> StdioServer:
    """The bench server over stdio, as mcpbridge starts it."""
    return StdioServer(name=name, command=sys.executable, args=tuple(server_args(events=events)), cwd=ROOT)


def http_server(process: HttpServerProcess, name: str = "bench") -> HttpServer:
    """A bench HTTP server, as mcpbridge reaches it."""
    return HttpServer(name=name, url=process.url)
