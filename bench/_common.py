"""Shared pieces of the hand-run benchmarks in bench/: start a throwaway `graft serve` on the
loopback interface, drive it with `wrk`, parse wrk's report, describe the machine.

Benchmarks are not tests: nothing here is collected by pytest. Standard library + httpx only.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

import httpx

HOST = "127.0.0.1"  # benchmarks only ever target the loopback interface
BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"  # git-ignored
TOKEN_RE = re.compile(r"^graft_[0-9A-Za-z]{49}$")


class BenchError(RuntimeError):
    """A benchmark cannot produce a trustworthy figure; the message says why."""


# -- process hygiene ------------------------------------------------------------------------
def raise_on_termination() -> None:
    """Turn SIGTERM/SIGHUP into KeyboardInterrupt so `finally` blocks clean up as on Ctrl-C."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGHUP, handler)


def graft_executable() -> str:
    """The `graft` next to this interpreter (the project venv), else the one on PATH."""
    sibling = Path(sys.executable).parent / "graft"
    if sibling.exists():
        return str(sibling)
    found = shutil.which("graft")
    if not found:
        raise BenchError("`graft` not found: run with the project's venv python")
    return found


def wrk_executable() -> str:
    found = shutil.which("wrk")
    if not found:
        raise BenchError("`wrk` not found: install it (Debian/Ubuntu: apt-get install -y wrk)")
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def duration_seconds(text: str) -> float:
    """wrk's duration syntax: `10s`, `2m`, `1h` or plain seconds."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([smh]?)", text.strip())
    if not m:
        raise ValueError(f"{text!r} is not a duration such as 10s or 1m")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]


# -- a throwaway server -----------------------------------------------------------------------
class GraftServer:
    """`graft serve` on a free loopback port, with a fresh data directory in a temp dir.

    The server runs in its own session (process group), so Ctrl-C in the terminal reaches only
    this script, which then stops the server itself: SIGINT, then SIGTERM, then SIGKILL to the
    group, waiting in between. Its stdout (the JSON access log) and stderr go to files in the
    temp dir, never to an undrained pipe. Use as a context manager; the temp dir is removed on
    exit whatever happened.
    """

    def __init__(
        self,
        *,
        server: str,
        workers: int,
        settings: Mapping[str, str] | None = None,
        startup_timeout: float = 60.0,
        keep_dir: bool = False,
    ) -> None:
        self.server = server
        self.workers = workers
        self.settings = dict(settings or {})
        self.startup_timeout = startup_timeout
        self.keep_dir = keep_dir
        self.graft = graft_executable()
        self.port = 0
        self.dir: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self._files: list[Any] = []

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def stdout_path(self) -> Path:
        assert self.dir is not None
        return self.dir / "server-stdout.log"

    @property
    def stderr_path(self) -> Path:
        assert self.dir is not None
        return self.dir / "server-stderr.log"

    def env(self) -> dict[str, str]:
        """A clean environment: no GRAFT_* from the caller (a GRAFT_DATABASE_URL must never
        point the benchmark at a real database), no graft.toml, only what is set here."""
        assert self.dir is not None
        env = {k: v for k, v in os.environ.items() if not k.startswith("GRAFT_")}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        env.update(
            {
                "GRAFT_CONFIG": str(self.dir / "absent.toml"),
                "GRAFT_DATA_DIR": str(self.dir / "data"),
                "GRAFT_HOST": HOST,
                "COLUMNS": "200",  # rich: never wrap the token in CLI output
                "NO_COLOR": "1",
            }
        )
        env.update({f"GRAFT_{k.upper()}": v for k, v in self.settings.items()})
        return env

    def cli(self, *args: str) -> str:
        """Run a `graft` admin command against this server's data directory; its stdout."""
        assert self.dir is not None
        done = subprocess.run(
            [self.graft, *args],
            env=self.env(),
            cwd=self.dir,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            raise BenchError(f"graft {' '.join(args)} failed ({done.returncode}): {done.stderr}")
        return done.stdout

    def __enter__(self) -> GraftServer:
        self.dir = Path(tempfile.mkdtemp(prefix=f"graft-bench-{self.server}-"))
        try:
            self.cli("init", "--demo")
            self._start()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        # A second Ctrl-C must not cut the cleanup short: hold signals until it is done.
        held = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
        old = signal.pthread_sigmask(signal.SIG_BLOCK, held)
        try:
            self.stop()
        finally:
            for f in self._files:
                f.close()
            self._files.clear()
            if self.dir is not None and not self.keep_dir:
                shutil.rmtree(self.dir, ignore_errors=True)
            signal.pthread_sigmask(signal.SIG_SETMASK, old)

    def _start(self) -> None:
        assert self.dir is not None
        self.port = free_port()
        out = open(self.stdout_path, "wb")  # noqa: SIM115 (closed in __exit__)
        self._files.append(out)
        err = open(self.stderr_path, "wb")  # noqa: SIM115
        self._files.append(err)
        cmd = [self.graft, "serve", "--host", HOST, "--port", str(self.port)]
        cmd += ["--workers", str(self.workers), "--server", self.server]
        self.proc = subprocess.Popen(
            cmd,
            env=self.env(),
            cwd=self.dir,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
        deadline = time.monotonic() + self.startup_timeout
        with httpx.Client(timeout=2.0) as client:
            while True:
                if self.proc.poll() is not None:
                    raise BenchError(
                        f"{self.server} exited with {self.proc.returncode} while starting:\n"
                        + self.stderr_tail()
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(f"{self.base_url}/healthz").status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise BenchError(
                        f"{self.server} did not answer /healthz within {self.startup_timeout:.0f}s"
                        ":\n" + self.stderr_tail()
                    )
                time.sleep(0.1)

    def cpu_seconds(self) -> float:
        """CPU time used so far by the server and its worker processes (Linux only)."""
        if self.proc is None or not Path("/proc/self/stat").exists():
            return 0.0
        return cpu_seconds(process_tree(self.proc.pid))

    def stderr_tail(self, lines: int = 20) -> str:
        try:
            text = self.stderr_path.read_text(errors="replace")
        except OSError:
            return "(no stderr)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 20.0) -> None:
        """SIGINT (graceful: workers finish, lifespan shutdown runs), then escalate."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        pgid = proc.pid  # start_new_session: the group id is the leader's pid
        for sig, wait in ((signal.SIGINT, timeout), (signal.SIGTERM, 5.0)):
            if proc.poll() is not None:
                break
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(wait)
        if proc.poll() is None:
            print(f"warning: {self.server} ignored SIGINT and SIGTERM; killing", file=sys.stderr)
        # Kill the leader if still there and any worker it left behind (same process group).
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(pgid, 0)
            except (ProcessLookupError, PermissionError):
                break
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, sig)
            time.sleep(1.0)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5.0)


def make_read_token(srv: GraftServer, org: str = "demo", account: str = "admin") -> str:
    """A read-scoped token for the demo admin account, via `graft token create --json`."""
    out = srv.cli(
        "token", "create", "--org", org, "--account", account, "--scope", "read", "--json"
    )
    try:
        token = json.loads(out)["token"]
    except (ValueError, KeyError, TypeError):
        raise BenchError(f"unexpected `graft token create --json` output: {out!r}") from None
    if not isinstance(token, str) or not TOKEN_RE.match(token):
        raise BenchError("`graft token create --json` returned no well-formed token")
    return token


# -- wrk --------------------------------------------------------------------------------------
class CpuMeter(Protocol):
    """Anything that can tell the CPU seconds its processes used so far (GraftServer, peers)."""

    def cpu_seconds(self) -> float: ...


@dataclass
class WrkResult:
    url: str
    requests_per_second: float
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    non_2xx_3xx: int = 0
    socket_errors: dict[str, int] = field(default_factory=dict)
    # Less noisy than req/s on a shared machine: CPU the server used per answered request,
    # and the share of CPU time the hypervisor gave to other guests during the run.
    server_cpu_us_per_request: float | None = None
    cpu_steal_percent: float | None = None
    # Cores busy with anything but this server and wrk (other people's jobs on a shared box).
    other_cpu_cores: float | None = None
    # Cores spent in softirq (included in other_cpu_cores: loopback TCP is largely done there).
    softirq_cores: float | None = None
    # wrk's "N requests in Xs, Y MB read" and "Transfer/sec" (its units are powers of 1024).
    bytes_read: int | None = None
    transfer_bytes_per_second: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
_UNIT_BYTES = {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}


def _ms(value: str, unit: str) -> float:
    return float(value) * _UNIT_MS[unit]


def parse_wrk(url: str, text: str) -> WrkResult:
    """Parse the report of `wrk --latency`."""

    def need(pattern: str) -> re.Match[str]:
        m = re.search(pattern, text, re.MULTILINE)
        if not m:
            raise BenchError(f"unexpected wrk output (no match for {pattern!r}):\n{text}")
        return m

    rps = float(need(r"^Requests/sec:\s+([\d.]+)").group(1))
    total = need(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m)")
    p50 = need(r"^\s+50%\s+([\d.]+)(us|ms|s|m)\s*$")
    p99 = need(r"^\s+99%\s+([\d.]+)(us|ms|s|m)\s*$")
    read = re.search(r"requests in [\d.]+\w+, ([\d.]+)(B|KB|MB|GB|TB) read", text)
    transfer = re.search(r"^Transfer/sec:\s+([\d.]+)(B|KB|MB|GB|TB)\s*$", text, re.MULTILINE)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    errors = {}
    if sock:
        errors = dict(
            zip(("connect", "read", "write", "timeout"), map(int, sock.groups()), strict=True)
        )
    return WrkResult(
        url=url,
        requests_per_second=rps,
        requests=int(total.group(1)),
        seconds=_ms(total.group(2), total.group(3)) / 1000,
        p50_ms=_ms(*p50.groups()),
        p99_ms=_ms(*p99.groups()),
        non_2xx_3xx=int(non2xx.group(1)) if non2xx else 0,
        socket_errors=errors,
        bytes_read=round(float(read.group(1)) * _UNIT_BYTES[read.group(2)]) if read else None,
        transfer_bytes_per_second=(
            float(transfer.group(1)) * _UNIT_BYTES[transfer.group(2)] if transfer else None
        ),
    )


def run_wrk(
    url: str,
    *,
    threads: int,
    connections: int,
    duration: str,
    headers: Mapping[str, str] | None = None,
    server: CpuMeter | None = None,
    extra_args: Sequence[str] = (),
) -> WrkResult:
    """Run wrk once; with `server` (a GraftServer or any CpuMeter), also measure the CPU its
    processes used."""
    if not url.startswith(f"http://{HOST}:"):
        raise BenchError(f"refusing to load anything but {HOST}: {url}")
    cmd = [wrk_executable(), f"-t{threads}", f"-c{connections}", f"-d{duration}", "--latency"]
    for name, value in (headers or {}).items():
        cmd += ["-H", f"{name}: {value}"]
    cmd += [*extra_args, url]
    cpu_before = server.cpu_seconds() if server else None
    wrk_before = children_cpu()
    stat_before = system_cpu()
    started = time.monotonic()
    # run() kills wrk if we are interrupted; output is small, so pipes are fine here.
    done = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=duration_seconds(duration) + 60,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"wrk failed ({done.returncode}): {done.stderr}{done.stdout}")
    wall = time.monotonic() - started
    stat_after = system_cpu()
    wrk_used = children_cpu() - wrk_before
    result = parse_wrk(url, done.stdout)
    server_used = server.cpu_seconds() - cpu_before if server and cpu_before is not None else None
    if server_used is not None and result.requests:
        result.server_cpu_us_per_request = round(server_used / result.requests * 1e6, 1)
    if stat_before and stat_after and stat_after.total > stat_before.total:
        elapsed_cpu = stat_after.total - stat_before.total
        steal = (stat_after.steal - stat_before.steal) / elapsed_cpu
        result.cpu_steal_percent = round(steal * 100, 1)
        result.softirq_cores = round((stat_after.softirq - stat_before.softirq) / wall, 2)
        if server_used is not None:
            busy = stat_after.busy - stat_before.busy
            other = max(0.0, busy - server_used - wrk_used) / wall
            result.other_cpu_cores = round(other, 2)
    return result


@dataclass(frozen=True)
class SystemCpu:
    """Whole-machine CPU counters from /proc/stat, in seconds."""

    busy: float
    steal: float
    total: float
    softirq: float = 0.0  # part of busy; loopback networking is largely accounted here


def system_cpu() -> SystemCpu | None:
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if len(fields) < 9 or fields[0] != "cpu":
        return None
    # user nice system idle iowait irq softirq steal [guest guest_nice: already in user/nice]
    v = [int(x) / os.sysconf("SC_CLK_TCK") for x in fields[1:9]]
    return SystemCpu(busy=v[0] + v[1] + v[2] + v[5] + v[6], steal=v[7], total=sum(v), softirq=v[6])


def children_cpu() -> float:
    """CPU used by this process's reaped children (wrk, once run() has waited for it)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def process_tree(root: int) -> list[int]:
    """`root` and all its descendants (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time used so far by these processes (all their threads)."""
    ticks = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


# -- reporting --------------------------------------------------------------------------------
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def wrk_version() -> str:
    done = subprocess.run(
        [wrk_executable(), "--version"], capture_output=True, text=True, check=False
    )
    lines = (done.stdout or done.stderr).splitlines()
    return lines[0].strip() if lines else "unknown"


def machine_info() -> dict[str, Any]:
    return {
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "versions": {
            name: package_version(name)
            for name in ("graft", "granian", "uvicorn", "starlette", "httpx")
        },
        "wrk": wrk_version(),
    }


def write_json(name: str, payload: Mapping[str, Any]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    path = RESULTS_DIR / f"{name}-{stamp}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


@contextlib.contextmanager
def cleanup_on_interrupt() -> Iterator[None]:
    """Exit 130 with a short message on Ctrl-C (cleanup has run in the `finally` blocks)."""
    raise_on_termination()
    try:
        yield
    except KeyboardInterrupt as exc:
        print(
            f"\ninterrupted ({str(exc) or 'Ctrl-C'}); servers stopped, temp dirs removed",
            file=sys.stderr,
        )
        raise SystemExit(130) from None
