"""The harness's own promises, without act: what a test starts is found and stopped, however it
detached, and a held port stays free for the service it is meant for."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from act_harness import held_port, listeners_under, listening, stop_processes_under

# Forks a grandchild that leaves the session and the directory, listens, and outlives its parent:
# what a deployed service or nginx's worker does once the job that started it has ended.
DETACHED_LISTENER = """
import os, socket, sys, time
if os.fork():
    sys.exit(0)
os.setsid()
os.chdir("/")
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen()
open(os.environ["PORT_FILE"], "w").write(str(s.getsockname()[1]))
time.sleep(600)
"""


def test_stop_processes_under_stops_a_detached_listener_and_nothing_is_left_listening(
    tmp_path: Path,
) -> None:
    port_file = tmp_path / "port"
    # Only its environment names the test's directory (act passes HOME on to every step).
    env = {**os.environ, "HOME": str(tmp_path / "home"), "PORT_FILE": str(port_file)}
    subprocess.run([sys.executable, "-c", DETACHED_LISTENER], cwd="/", env=env, check=True)
    try:
        deadline = time.monotonic() + 30
        while not port_file.is_file() or not port_file.read_text():
            assert time.monotonic() < deadline, "the listener did not start"
            time.sleep(0.05)
        port = int(port_file.read_text())
        assert listening(port)
        assert [line.split()[0] for line in listeners_under(tmp_path)] == [str(port)]

        stopped = stop_processes_under(tmp_path)

        assert len(stopped) == 1, stopped
        assert listeners_under(tmp_path) == []
        assert not listening(port)
    finally:
        stop_processes_under(tmp_path)  # a failed assertion leaves nothing running either


def test_held_port_is_refused_to_other_binds_and_open_to_the_service() -> None:
    hold = held_port()
    port = hold.getsockname()[1]
    try:
        with socket.socket() as other:
            try:
                other.bind(("127.0.0.1", port))
            except OSError:
                pass
            else:
                raise AssertionError(f"another socket could bind the held port {port}")
        with socket.socket() as service:  # binds as uvicorn and asyncio do
            service.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            service.bind(("127.0.0.1", port))
            service.listen()
            assert listening(port)
    finally:
        hold.close()
