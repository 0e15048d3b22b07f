"""The whole suite, in one run: ``python -m bench`` from the repository root.

It starts the bench MCP servers (on 127.0.0.1, each stopped by its own handle),
builds or reuses the ``langchain-mcp-adapters`` and ``langchain.mcp`` venvs, runs every section with
its peers interleaved, prints the table and writes ``bench/results/latest.json``.
A section that fails is reported as a skipped row with its error (and the exit
code is 1); targets that are missed are reported, not raised (``--strict``
makes them exit 1 too).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import anyio
import anyio.to_thread

from bench import _langchain_mcp, table
from bench._adapters import AdaptersDriver, ensure_venv
from bench._env import FULL, QUICK, Env
from bench._processes import start_http_servers
from bench.calls import tool_calls
from bench.connect import HANDSHAKE_DELAY, fan_out, pool
from bench.e2e import end_to_end
from bench.factory_read import factory_reads
from bench.memory import memory_per_run
from bench.results import LATEST, Metric, combine, document, machine, packages, skipped, validate, write
from bench.scaling import scaling_modes
from bench.serving import agent_over_mcp

SECTIONS = ("calls", "factory", "fanout", "pool", "memory", "serve", "e2e", "scaling")


@dataclass(frozen=True, slots=True)
class Options:
    """What the command line asked for."""

    quick: bool
    adapters: bool
    langchain_mcp: bool
    agent_server: bool
    fresh_venv: bool
    sections: tuple[str, ...]
    output: Path
    strict: bool
    runs: int
    argv: tuple[str, ...]


def parse(argv: Sequence[str]) -> Options:
    """Read the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a few repetitions of everything, without the adapters venv and the Agent Server (a smoke run)",
    )
    parser.add_argument(
        "--agent-server",
        action="store_true",
        help="with --quick, run the Agent Server (langgraph dev) rows and sections too, in their quick form",
    )
    parser.add_argument("--no-adapters", action="store_true", help="skip the langchain-mcp-adapters peer")
    parser.add_argument(
        "--no-langchain-mcp",
        action="store_true",
        help="skip the langchain.mcp peer (it runs in --quick too, in bench/.venv-langchain-mcp)",
    )
    parser.add_argument(
        "--no-agent-server",
        action="store_true",
        help="skip the Agent Server (langgraph dev): its /mcp row and the e2e and scaling sections",
    )
    parser.add_argument("--fresh-venv", action="store_true", help="rebuild the peers' venvs first")
    parser.add_argument("--only", help=f"comma-separated sections to run, of: {', '.join(SECTIONS)}")
    parser.add_argument("--output", type=Path, default=LATEST, help="where to write the JSON results")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument(
        "--runs",
        type=int,
        default=1,
        help="run the suite this many times; each metric keeps its median run, each target its median value",
    )
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    sections = tuple(SECTIONS if not args.only else [s.strip() for s in args.only.split(",") if s.strip()])
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    return Options(
        quick=args.quick,
        adapters=not (args.quick or args.no_adapters),
        langchain_mcp=not args.no_langchain_mcp,
        agent_server=not args.no_agent_server and (args.agent_server or not args.quick),
        fresh_venv=args.fresh_venv,
        sections=sections,
        output=args.output,
        strict=args.strict,
        runs=args.runs,
        argv=tuple(argv),
    )


def _one_line(exc: BaseException) -> str:
    """The first line of an error, and its last when it has more (a child's traceback ends there)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or [type(exc).__name__]
    text = lines[0] if len(lines) == 1 else f"{lines[0]} ... {lines[-1]}"
    return text[:400]


def _log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


async def run(options: Options, workdir: Path) -> tuple[list[Metric], dict[str, str | None], int]:
    """Run the chosen sections; return their metrics, the adapters venv's versions, and the errors."""
    sizes = QUICK if options.quick else FULL
    selected = set(options.sections)
    extra: dict[str, str | None] = {}
    metrics: list[Metric] = []
    errors = 0
    with ExitStack() as processes:
        needs_delayed = "fanout" in selected
        started = time.monotonic()
        servers = start_http_servers(processes, workdir, 2, label="http")
        delayed = (
            start_http_servers(processes, workdir, 8, handshake_delay=HANDSHAKE_DELAY, label="slow")
            if needs_delayed
            else []
        )
        _log(f"{2 + len(delayed)} HTTP bench servers up in {time.monotonic() - started:.1f} s")
        async with AsyncExitStack() as stack:
            env = Env(
                sizes=sizes,
                workdir=workdir,
                http=servers[0],
                http2=servers[1],
                delayed=delayed,
                adapters=None,
            )
            if "calls" not in selected:
                env.adapters_skipped = "not run"
            elif not options.adapters:
                env.adapters_skipped = "skipped by --quick" if options.quick else "skipped by --no-adapters"
            else:
                try:
                    python = await anyio.to_thread.run_sync(lambda: ensure_venv(fresh=options.fresh_venv))
                    driver = await stack.enter_async_context(
                        AdaptersDriver(python, workdir / "adapters-driver.log")
                    )
                    versions = await driver.versions()
                    extra = {
                        "langchain-mcp-adapters": versions["langchain-mcp-adapters"],
                        "mcp (adapters venv)": versions["mcp"],
                    }
                    env.adapters = driver
                except Exception as exc:  # the other peers still run; the rows say why
                    env.adapters_skipped = f"adapters venv unavailable: {_one_line(exc)}"
                    _log(env.adapters_skipped)
                    errors += 1
            if not selected & {"calls", "fanout"}:
                env.langchain_mcp_skipped = "not run"
            elif not options.langchain_mcp:
                env.langchain_mcp_skipped = "skipped by --no-langchain-mcp"
            else:
                try:
                    python = await anyio.to_thread.run_sync(
                        lambda: _langchain_mcp.ensure(fresh=options.fresh_venv)
                    )
                    driver = await stack.enter_async_context(
                        AdaptersDriver(python, workdir / "langchain-mcp-driver.log", _langchain_mcp.DRIVER)
                    )
                    versions = await driver.versions()
                    extra |= {
                        "langchain (langchain.mcp venv)": versions["langchain"],
                        "fastmcp (langchain.mcp venv)": versions["fastmcp"],
                        "mcp (langchain.mcp venv)": versions["mcp"],
                    }
                    env.langchain_mcp = driver
                except Exception as exc:  # the other peers still run; the rows say why
                    env.langchain_mcp_skipped = f"langchain.mcp venv unavailable: {_one_line(exc)}"
                    _log(env.langchain_mcp_skipped)
                    errors += 1
            agent_server_skipped = "skipped by --quick" if options.quick else "skipped by --no-agent-server"
            steps: dict[str, Callable[[], Awaitable[list[Metric]]]] = {
                "calls": lambda: tool_calls(env),
                "factory": lambda: factory_reads(env),
                "fanout": lambda: fan_out(env),
                "pool": lambda: pool(env),
                "memory": lambda: memory_per_run(env),
                "serve": lambda: agent_over_mcp(
                    env, agent_server=options.agent_server, agent_server_skipped=agent_server_skipped
                ),
                "e2e": lambda: end_to_end(
                    env,
                    agent_server=options.agent_server,
                    agent_server_skipped=agent_server_skipped,
                    langchain_mcp=options.langchain_mcp,
                    fresh_venv=options.fresh_venv and not selected & {"calls", "fanout"},
                ),
                "scaling": lambda: scaling_modes(
                    env, agent_server=options.agent_server, agent_server_skipped=agent_server_skipped
                ),
            }
            for name in options.sections:
                _log(f"{name} ...")
                began = time.monotonic()
                try:
                    found = await steps[name]()
                except Exception as exc:  # one broken section must not lose the others' results
                    traceback.print_exc(file=sys.stderr)
                    reason = f"error: {_one_line(exc)}"
                    found = [skipped(f"{name}.error", f"Section {name}", "-", "-", reason)]
                    errors += 1
                metrics += found
                _log(f"{name} done in {time.monotonic() - began:.0f} s")
    return metrics, extra, errors


def main(argv: Sequence[str] | None = None) -> int:
    """Run the suite; print the table and write the JSON results."""
    options = parse(sys.argv[1:] if argv is None else argv)
    started_at = datetime.now(UTC)
    began = time.monotonic()
    machine_info = machine()
    every: list[list[Metric]] = []
    extra: dict[str, str | None] = {}
    errors = 0
    for index in range(options.runs):
        if options.runs > 1:
            _log(f"run {index + 1} of {options.runs}")
        with tempfile.TemporaryDirectory(prefix="mcpbridge-bench-") as scratch:
            metrics, extra, failed = anyio.run(run, options, Path(scratch))
        every.append(metrics)
        errors += failed
    metrics = every[0] if options.runs == 1 else combine(every)
    machine_info["load_average_end"] = machine()["load_average"]
    data = document(
        metrics,
        command=shlex.join(["python", "-m", "bench", *options.argv]),
        started=started_at.isoformat(timespec="seconds"),
        finished=datetime.now(UTC).isoformat(timespec="seconds"),
        duration_s=time.monotonic() - began,
        quick=options.quick,
        machine_info=machine_info,
        package_versions={**packages(), **extra},
        runs=options.runs,
    )
    problems = validate(data)
    if problems:
        raise AssertionError("results do not match their schema: " + "; ".join(problems))
    write(data, options.output)
    print(table.plain(data))
    print(f"\nwritten to {options.output}")
    if errors:
        return 1
    return 1 if options.strict and data["summary"]["failed"] else 0
