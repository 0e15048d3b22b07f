"""What each hostile input costs the process, with the caps off and then on.

Run ``python -m tests.security.exhaustion`` (``--help`` for the sizes). It starts the
hostile example server over streamable HTTP on 127.0.0.1 (twice: once answering with
event streams, once with one JSON body per request), then measures each hostile
input twice, caps off (very large limits) and caps on (the defaults of a deployment's
server), each in a fresh Python process so one row's memory does not hide another's:

- time: entering the `Bridge` (connect, list and prepare the tools, build them) and
  the hostile call, if there is one;
- max stall: the longest the event loop went without running a ticker task that
  wakes every 5 ms (another run's latency, had it shared the process);
- RSS growth: the peak resident memory during the row, above the memory before it.

Figures only: the tests (``test_exhaustion.py``) assert the caps' reasons, never time.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio

from mcpbridge import Bridge, ConnectError, HttpServer
from tests.integration.graphs import call, run_config, tool_calls, tool_graph
from tests.integration.support import ROOT, start_http_server
from tests.support.servers.common import JSON_RESPONSE_ENV
from tests.support.servers.hostile import FLOOD_TOOLS_HEADER

ROWS = ("tools", "images", "progress", "logs", "json")
TICK = 0.005
OFF: dict[str, Any] = {
    "max_tools": 10**9,
    "max_result_chars": 10**12,
    "max_progress_per_second": 1e12,
    "max_log_level": "emergency",
    "max_response_bytes": 10**12,
}
"""The caps off: limits no input reaches."""


# --- one row, in a process of its own ------------------------------------------------------------


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_peak_rss() -> None:
    with open("/proc/self/clear_refs", "w") as file:  # "5" resets the peak RSS to the current RSS
        file.write("5")


class _Ticker:
    """Measures the longest gap between the event loop's turns to a task that asks for one every 5 ms."""

    def __init__(self) -> None:
        self.longest = 0.0
        self.stopped = False

    async def run(self) -> None:
        last = time.monotonic()
        while not self.stopped:
            await anyio.sleep(TICK)
            now = time.monotonic()
            self.longest = max(self.longest, now - last - TICK)
            last = now


class _Counter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records = 0

    def emit(self, record: logging.LogRecord) -> None:
        record.getMessage()  # what a real handler does first
        self.records += 1


def _server(url: str, caps: str, **options: Any) -> HttpServer:
    bounds = OFF if caps == "off" else {}
    return HttpServer(name="hostile", url=url, connect_timeout=600, call_timeout=600, **{**bounds, **options})


async def _one_call(server: HttpServer, tool: str, **arguments: Any) -> tuple[str, list[Any]]:
    """Connect, make one call through a real graph; the tool message's size and the custom events."""
    events: list[Any] = []
    async with Bridge([server]) as bridge:
        graph = tool_graph(bridge.tools)
        config = run_config()
        async for mode, chunk in graph.astream(
            tool_calls(call(tool, "c", **arguments)), config, stream_mode=["custom", "values"]
        ):
            if mode == "custom":
                events.append(chunk)
        state = await graph.aget_state(config)
    message = state.values["messages"][-1]
    size = len(json.dumps(message.content, default=str))
    return f"{getattr(message, 'status', '?')}, {size:,} characters kept", events


async def _row(row: str, caps: str, url: str, json_url: str, sizes: dict[str, Any]) -> str:
    match row:
        case "tools":
            server = _server(url, caps, headers={FLOOD_TOOLS_HEADER: str(sizes["tools"])})
            try:
                async with Bridge([server]) as bridge:
                    return f"{len(bridge.tools):,} tools bound"
            except ConnectError as exc:
                return "refused: " + exc.failures["hostile"].reason.split(";")[0]
        case "images":
            outcome, _ = await _one_call(_server(url, caps), "images", megabytes=sizes["images"])
            return outcome
        case "progress":
            _, events = await _one_call(_server(url, caps), "progress_flood", steps=sizes["progress"])
            return f"{len(events):,} stream events, last step {events[-1]['progress']:,.0f}"
        case "logs":
            import mcpbridge._serverlogs as serverlogs

            if caps == "off":  # no rate bound
                serverlogs.LOG_BURST = 10**9  # pyright: ignore[reportConstantRedefinition]
                serverlogs.LOG_PER_SECOND = 1e12  # pyright: ignore[reportConstantRedefinition]
            counter = _Counter()
            logging.getLogger("mcpbridge.server").addHandler(counter)
            logging.getLogger("mcpbridge.server").setLevel(logging.DEBUG)
            await _one_call(_server(url, caps), "log_flood", messages=sizes["logs"])
            return f"{counter.records:,} log records"
        case "json":
            megabytes = sizes["json"] // 2  # the text, and as much structured content
            try:
                outcome, _ = await _one_call(_server(json_url, caps), "huge", megabytes=megabytes)
            except Exception as exc:  # a refused answer may end the run: report it
                return f"failed: {type(exc).__name__}: {str(exc)[:60]}"
            return outcome
        case _:
            raise ValueError(row)


async def _measure(action: Callable[[], Awaitable[str]]) -> dict[str, Any]:
    ticker = _Ticker()
    outcome, elapsed = "", math.nan
    _reset_peak_rss()
    before = _rss_kib("VmRSS")
    async with anyio.create_task_group() as group:
        group.start_soon(ticker.run)
        await anyio.sleep(0.05)  # the ticker's first turns, before the load
        started = time.monotonic()
        outcome = await action()
        elapsed = time.monotonic() - started
        ticker.stopped = True
    return {
        "time": elapsed,
        "stall": ticker.longest,
        "rss": (_rss_kib("VmHWM") - before) / 1024,
        "outcome": outcome,
    }


def _child(options: argparse.Namespace) -> None:
    logging.getLogger("mcpbridge").setLevel(logging.ERROR)  # the rows' own warnings are not figures
    sizes = {row: getattr(options, row) for row in ROWS}

    async def main() -> dict[str, Any]:
        # A first small run pays the one-time costs (imports on first use, graph compilation),
        # so the row measures the hostile input alone.
        await _one_call(_server(options.url, "on"), "add", a="warm", b="up")
        return await _measure(lambda: _row(options.row, options.caps, options.url, options.json_url, sizes))

    print(json.dumps(anyio.run(main)))


# --- the table ---------------------------------------------------------------------------------------


def _label(row: str, options: argparse.Namespace) -> str:
    return {
        "tools": f"{options.tools:,} tools",
        "images": f"{options.images:g} MB of base64 images",
        "progress": f"{options.progress:,} progress notifications",
        "logs": f"{options.logs:,} forged critical log lines",
        "json": f"{options.json:,} MB JSON answer",
    }[row]


def _parent(options: argparse.Namespace) -> None:
    directory = Path(tempfile.mkdtemp(prefix="exhaustion-"))
    streaming = start_http_server("hostile", directory)
    plain = start_http_server("hostile", directory, env={JSON_RESPONSE_ENV: "1"})
    try:
        print(f"{'input':<34} {'caps':<4} {'time s':>8} {'max stall ms':>13} {'RSS growth MiB':>15}  outcome")
        for row in options.rows:
            for caps in ("off", "on"):
                command = [sys.executable, "-m", "tests.security.exhaustion", "--child", row, caps]
                command += ["--url", streaming.url, "--json-url", plain.url]
                command += [f"--{name}={getattr(options, name)}" for name in ROWS]
                done = subprocess.run(
                    command, cwd=ROOT, capture_output=True, text=True, timeout=900, check=False
                )
                if done.returncode != 0:
                    print(f"{_label(row, options):<34} {caps:<4} failed:\n{done.stderr[-2000:]}")
                    continue
                figures = json.loads(done.stdout.strip().splitlines()[-1])
                print(
                    f"{_label(row, options):<34} {caps:<4} {figures['time']:>8.1f} "
                    f"{figures['stall'] * 1000:>13.0f} {figures['rss']:>15.0f}  {figures['outcome']}",
                    flush=True,
                )
    finally:
        streaming.stop()
        plain.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tools", type=int, default=100_000, help="tools the server offers")
    parser.add_argument("--images", type=float, default=20, help="megabytes of base64 images in one answer")
    parser.add_argument("--progress", type=int, default=20_000, help="progress notifications in one call")
    parser.add_argument("--logs", type=int, default=20_000, help="log messages in one call")
    parser.add_argument("--json", type=int, default=300, help="megabytes of one JSON answer")
    parser.add_argument("--rows", nargs="+", choices=ROWS, default=list(ROWS), help="which inputs to run")
    parser.add_argument("--child", nargs=2, metavar=("ROW", "CAPS"), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--json-url", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        options.row, options.caps = options.child
        _child(options)
    else:
        os.environ.pop(JSON_RESPONSE_ENV, None)
        _parent(options)


if __name__ == "__main__":
    main()
