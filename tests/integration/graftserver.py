"""Start a real `graft serve` process for integration tests (and, later, the client tests)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

GRAFT = str(Path(sys.executable).with_name("graft"))
TOKEN_LINE = re.compile(r"^graft_[0-9A-Za-z]{49}$", re.M)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def graft_env(data_dir: Path, **settings: object) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRAFT_")}
    env["GRAFT_DATA_DIR"] = str(data_dir)
    env["GRAFT_CONFIG"] = str(data_dir / "graft.toml")
    for key, value in settings.items():
        env[f"GRAFT_{key.upper()}"] = str(value)
    return env


def run_cli(
    env: dict[str, str], *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [GRAFT, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"graft {' '.join(args)} failed: {proc.stdout}\n{proc.stderr}")
    return proc


class GraftServer:
    """`graft init --demo` then `graft serve` on a free port; `token` is the demo admin token."""

    def __init__(self, data_dir: Path, **settings: object) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = graft_env(data_dir, port=self.port, **settings)
        self.log_path = data_dir / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.token = ""

    def start(self) -> GraftServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        init = run_cli(self.env, "init", "--demo")
        found = TOKEN_LINE.findall(init.stdout)
        if found:
            self.token = found[-1]
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [GRAFT, "serve"],
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"graft serve exited: {self.log()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"graft serve did not start: {self.log()}")

    def env_port(self, name: str) -> int:
        """A port setting this server was started with, e.g. env_port("BLOB_SERVER_PORT")."""
        return int(self.env[f"GRAFT_{name}"])

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run_cli(self.env, *args, check=check)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if hasattr(self, "_log"):
            self._log.close()
