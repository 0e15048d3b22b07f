"""The fixtures the other integration tests rely on must be able to fail: checked here."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from .support import ChildProcesses, port_accepts, start_http_server

pytestmark = pytest.mark.integration

SPAWNS_A_CHILD = (
    "import subprocess, sys, time\n"
    "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
    "print(child.pid, flush=True)\n"
    "child.wait()\n"
)


def test_child_counter_sees_children_and_grandchildren(children: ChildProcesses) -> None:
    parent = subprocess.Popen([sys.executable, "-c", SPAWNS_A_CHILD], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    with parent.stdout:
        try:
            grandchild = int(parent.stdout.readline())
            assert {parent.pid, grandchild} <= children.new()
            with pytest.raises(AssertionError, match="leftover child processes"):
                children.assert_none_left()
            os.kill(grandchild, signal.SIGKILL)  # the parent reaps it and exits
            assert parent.wait(timeout=10) == 0
        finally:
            if parent.poll() is None:
                parent.kill()
                parent.wait(timeout=5)
    children.assert_none_left()


def test_http_server_helper_starts_and_stops(tmp_path: Path, children: ChildProcesses) -> None:
    server = start_http_server("echo", tmp_path)
    try:
        assert server.process.pid in children.new()
        assert port_accepts(server.port)
    finally:
        server.stop()
    assert server.process.returncode is not None
    assert not port_accepts(server.port)
    children.assert_none_left()
