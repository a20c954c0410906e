"""Server processes for the HTTP benchmarks: a free port, start and wait for health, stop."""

from __future__ import annotations

import os
import socket
import subprocess
import time

import httpx


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_process(
    cmd: list[str], port: int, *, health: str = "/health", env: dict[str, str] | None = None, what: str = "server"
) -> tuple[subprocess.Popen[bytes], str]:
    """Run ``cmd`` (a server listening on ``port``) and wait up to 60 s until ``health`` answers 200."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, env={**os.environ, **(env or {})})
    base = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(f"{base}{health}", timeout=1).status_code == 200:
                return proc, base
        except httpx.TransportError:
            time.sleep(0.1)
    stop(proc)
    raise RuntimeError(f"{what} did not start in 60 s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate ``proc`` (kill it after 30 s)."""
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=30)
