"""PyPI index benchmark (issue 3): Graft side by side with pypiserver, devpi-server and nginx.

Everything runs on 127.0.0.1 in one run, on the same data, which the script builds in a temp
dir: a project `bench-pkg` (40 versions x wheel + sdist = 80 files), `bench-big` (one wheel of
64 MiB of random bytes) and `pkg-01`..`pkg-20` (one small wheel each), written as a static
PEP 503 tree (`simple/`, `files/`).

- nginx (worker_processes 2, sendfile) serves that tree: the static index, the limit, and
  Graft's upstream (`GRAFT_UPSTREAM`) and devpi's mirror.
- pypiserver (its own venv, `--server auto` = waitress, cached-dir backend) serves `files/`;
  so does pypiserver-gunicorn (gunicorn 2 x 4 threads, a watchdog its cache works with).
- devpi-server (its own venv) mirrors the nginx index in a `root/mirror` index.
- Graft (`graft serve --workers N`, granian, access log on) pulls through from nginx.

The venvs of the peers live under ~/.cache/graft-bench (--peers-dir) and are created on first
use with the ordinary pip configuration. A peer that cannot be installed or started is reported
and skipped.

Measurements, warm caches, alternating servers round by round (ABC... then ...CBA):
1. pages: `wrk -t2 -c64 -d10s --latency` on each project page with pip's Accept header
   (and the read token for Graft), no If-None-Match; pages are checked to be a plain 200 first,
   and any non-2xx/3xx answer from Graft or nginx during a run fails it;
2. file: `wrk -t2 -c4 -d10s` on the 64 MiB wheel, MB/s = wrk's Transfer/sec; each server's
   copy is downloaded and sha256-checked first, and nginx's log shows whether Graft went
   upstream during the run (it must not: the cached path is measured);
3. `pip download --no-deps --no-cache-dir -d TMP --index-url URL pkg-01 ... pkg-20`, median of
   3, Graft (URL with credentials; warmed until a run sends nothing upstream) against the nginx
   static index; pip runs with no PIP_* variable and PIP_CONFIG_FILE=/dev/null.
4. optional (--tests small): as 1 on a 1 kB wheel, the per-file cost of the pip path.

    .venv/bin/python bench/pypi.py                    # Graft with 2 workers
    .venv/bin/python bench/pypi.py --workers 2 1      # and with 1
    .venv/bin/python bench/pypi.py --profile          # plus py-spy profiles of Graft
    .venv/bin/python bench/pypi.py --peers --tests pip   # Graft and nginx only, pip only

Targets: pages >= 5x the faster of pypiserver/devpi with p99 <= 20 ms; file >= 0.9x nginx;
pip download <= 1.1x nginx. Not a test: run it by hand on a quiet machine.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import importlib
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
from _common import (
    BENCH_DIR,
    HOST,
    BenchError,
    GraftServer,
    WrkResult,
    cleanup_on_interrupt,
    cpu_seconds,
    duration_seconds,
    free_port,
    machine_info,
    make_read_token,
    process_tree,
    run_wrk,
    system_cpu,
    write_json,
)

REPO_DIR = BENCH_DIR.parent
PROJECT = "bench-pkg"
BIG_PROJECT = "bench-big"
SMALL_PROJECTS = tuple(f"pkg-{i:02d}" for i in range(1, 21))
VERSIONS = 40
BASIC_USER = "rootio"  # any user name; the token is the password
# What pip 23+ sends for an index page.
PIP_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, "
    "text/html; q=0.01"
)
QUIET_CORES = 0.3  # more CPU than this used by other processes: the machine is not quiet
PEER_PACKAGES = {
    # As documented: `pypi-server run --server auto` picks the first importable of waitress,
    # paste, twisted, cherrypy, cheroot, wsgiref (with none installed: wsgiref, one request at
    # a time), and the `cache` extra (watchdog) turns on the cached-dir backend. With the
    # watchdog that extra pins (6.x), reading a file is itself a watched event (opened,
    # closed_no_write) that drops pypiserver's caches, so they never stay warm.
    "pypiserver": ["pypiserver[cache]", "waitress"],
    # pypiserver at its best here: under gunicorn (its README's deployment example), one
    # worker per core with threads, and a watchdog from before those events (2.2), so its
    # directory and digest caches hold.
    "pypiserver-gunicorn": ["pypiserver", "gunicorn", "watchdog<2.3"],
    "devpi": ["devpi-server"],
}
PEERS = ("pypiserver", "pypiserver-gunicorn", "devpi")
SETTLE_CORES = 0.05  # a server using less CPU than this is idle again after a run


# -- the data set ---------------------------------------------------------------------------
@dataclass
class Dataset:
    root: Path  # static tree: simple/<project>/index.html and files/
    sha256: dict[str, str]  # file name -> hex digest
    projects: dict[str, list[str]]  # project -> its file names
    big: str  # file name of the big wheel

    @property
    def files_dir(self) -> Path:
        return self.root / "files"

    def size(self, filename: str) -> int:
        return (self.files_dir / filename).stat().st_size


def _fixtures() -> tuple[Callable[..., Path], Callable[..., Path]]:
    """make_wheel / make_sdist from the test fixtures (tests/fixtures/dists.py)."""
    if str(REPO_DIR) not in sys.path:
        sys.path.insert(0, str(REPO_DIR))
    dists = importlib.import_module("tests.fixtures.dists")
    return dists.make_wheel, dists.make_sdist


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def write_big_wheel(dest: Path, name: str, version: str, payload_bytes: int) -> Path:
    """A valid wheel whose one module file is `payload_bytes` of random bytes, stored
    uncompressed (so the file is that big and no transport compression could shrink it)."""
    dist = name.replace("-", "_")
    info = f"{dist}-{version}.dist-info"
    out = dest / f"{dist}-{version}-py3-none-any.whl"
    stamp = (1980, 1, 1, 0, 0, 0)
    blob = hashlib.sha256()
    small = {
        f"{info}/METADATA": (
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
            "Summary: one big file for bench/pypi.py\n\n"
        ).encode(),
        f"{info}/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: graft-bench\nRoot-Is-Purelib: true\n"
            b"Tag: py3-none-any\n\n"
        ),
    }
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as zf:
        entry = zipfile.ZipInfo(f"{dist}/blob.bin", date_time=stamp)
        with zf.open(entry, "w") as f:
            left = payload_bytes
            while left:
                chunk = os.urandom(min(1 << 20, left))
                blob.update(chunk)
                f.write(chunk)
                left -= len(chunk)
        record = [f"{dist}/blob.bin,sha256="]
        record[0] += base64.urlsafe_b64encode(blob.digest()).rstrip(b"=").decode()
        record[0] += f",{payload_bytes}"
        for path, data in small.items():
            zf.writestr(zipfile.ZipInfo(path, date_time=stamp), data)
            record.append(f"{path},{_record_hash(data)},{len(data)}")
        record.append(f"{info}/RECORD,,")
        zf.writestr(zipfile.ZipInfo(f"{info}/RECORD", date_time=stamp), "\n".join(record) + "\n")
    return out


def build_dataset(root: Path, big_bytes: int) -> Dataset:
    make_wheel, make_sdist = _fixtures()
    files = root / "files"
    projects: dict[str, list[str]] = {PROJECT: [], BIG_PROJECT: []}
    for i in range(VERSIONS):
        version = f"{1 + i // 10}.{i % 10}.0"
        for make in (make_wheel, make_sdist):
            projects[PROJECT].append(make(files, PROJECT, version).name)
    big = write_big_wheel(files, BIG_PROJECT, "1.0.0", big_bytes).name
    projects[BIG_PROJECT].append(big)
    for name in SMALL_PROJECTS:
        projects[name] = [make_wheel(files, name, "1.0.0").name]
    sha = {p.name: _sha256(p) for p in files.iterdir()}
    simple = root / "simple"
    simple.mkdir(parents=True)
    links = "".join(f'<a href="{p}/">{p}</a><br/>\n' for p in sorted(projects))
    (simple / "index.html").write_text(_html("Simple index", links))
    # PEP 658/714 in the static tree too: Graft announces each wheel's core metadata, and pip
    # then fetches `<wheel>.metadata` before the wheel; the static index must offer the same
    # or the comparison counts a request per package that only Graft serves.
    meta = {n: _write_core_metadata(files, n) for n in sha if n.endswith(".whl")}
    for project, names in projects.items():
        (simple / project).mkdir()
        links = "".join(
            f'<a href="../../files/{n}#sha256={sha[n]}"'
            + (
                f' data-core-metadata="sha256={meta[n]}" data-dist-info-metadata="sha256={meta[n]}"'
                if n in meta
                else ""
            )
            + f">{n}</a><br/>\n"
            for n in sorted(names)
        )
        (simple / project / "index.html").write_text(_html(f"Links for {project}", links))
    return Dataset(root=root, sha256=sha, projects=projects, big=big)


def _write_core_metadata(files: Path, wheel: str) -> str:
    """`files/<wheel>.metadata` (the wheel's METADATA, PEP 658); its sha256."""
    with zipfile.ZipFile(files / wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        data = zf.read(name)
    (files / f"{wheel}.metadata").write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def _html(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html><head><meta name="pypi:repository-version" content="1.0">'
        f"<title>{title}</title></head><body><h1>{title}</h1>\n{body}</body></html>\n"
    )


# -- peer servers ----------------------------------------------------------------------------
class PeerUnavailable(Exception):
    """A peer could not be installed or started; the message says why (goes in the report)."""


class Peer:
    """A server process (nginx, pypiserver, devpi-server) in its own process group, with its
    output in files; stopped with SIGTERM, then SIGKILL to the whole group."""

    def __init__(
        self, name: str, cmd: list[str], workdir: Path, *, env: dict[str, str] | None = None
    ) -> None:
        self.name = name
        self.cmd = cmd
        self.workdir = workdir
        self.env = env
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self._files: list[Any] = []

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self, port: int, ready_path: str, timeout: float = 60.0) -> None:
        self.port = port
        out = open(self.workdir / f"{self.name}-stdout.log", "wb")  # noqa: SIM115 (closed in stop)
        err = open(self.workdir / f"{self.name}-stderr.log", "wb")  # noqa: SIM115
        self._files += [out, err]
        self.proc = subprocess.Popen(
            self.cmd,
            cwd=self.workdir,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2.0) as client:
            while True:
                if self.proc.poll() is not None:
                    raise PeerUnavailable(
                        f"{self.name} exited with {self.proc.returncode} while starting: "
                        + self.output_tail()
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(self.base_url + ready_path).status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise PeerUnavailable(
                        f"{self.name} did not answer {ready_path} within {timeout:.0f}s: "
                        + self.output_tail()
                    )
                time.sleep(0.2)

    def output_tail(self, lines: int = 8) -> str:
        text = ""
        for stream in ("stderr", "stdout"):
            with contextlib.suppress(OSError):
                text += (self.workdir / f"{self.name}-{stream}.log").read_text(errors="replace")
        return " | ".join(text.strip().splitlines()[-lines:]) or "(no output)"

    def cpu_seconds(self) -> float:
        return cpu_seconds(process_tree(self.proc.pid)) if self.proc else 0.0

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            stop_group(proc, self.name)
        for f in self._files:
            f.close()
        self._files.clear()


def stop_group(proc: subprocess.Popen[bytes], name: str) -> None:
    """SIGTERM to the process group, wait, then SIGKILL whatever is left of it."""
    held = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, held)  # a 2nd Ctrl-C must not cut this short
    try:
        for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(proc.pid, sig)
            except (ProcessLookupError, PermissionError):
                break
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(wait)
            if proc.poll() is not None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)  # workers left behind, if any
                break
        else:
            print(f"warning: {name} survived SIGKILL", file=sys.stderr)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def ensure_venv(peers_dir: Path, name: str, packages: list[str]) -> Path:
    """A venv with `packages`, made once with the ordinary pip configuration; its bin dir."""
    venv = peers_dir / f"{name}-venv"
    stamp = venv / "graft-bench-packages.txt"
    wanted = "\n".join(packages) + "\n"
    if stamp.exists() and stamp.read_text() == wanted and (venv / "bin" / "python").exists():
        return venv / "bin"
    print(f"   installing {' '.join(packages)} into {venv}", file=sys.stderr, flush=True)
    peers_dir.mkdir(parents=True, exist_ok=True)
    steps = [
        [sys.executable, "-m", "venv", "--clear", str(venv)],
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", *packages],
    ]
    for cmd in steps:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
        if done.returncode != 0:
            tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-5:])
            raise PeerUnavailable(f"`{' '.join(cmd[-3:])}` failed ({done.returncode}): {tail}")
    stamp.write_text(wanted)
    return venv / "bin"


def venv_versions(bin_dir: Path, names: Sequence[str]) -> dict[str, str]:
    code = (
        "import importlib.metadata as m, json, sys\n"
        "out = {}\n"
        "for n in sys.argv[1:]:\n"
        "    try: out[n] = m.version(n)\n"
        "    except m.PackageNotFoundError: out[n] = 'not installed'\n"
        "print(json.dumps(out))\n"
    )
    done = subprocess.run(
        [str(bin_dir / "python"), "-c", code, *names],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        versions: dict[str, str] = json.loads(done.stdout)
    except ValueError:
        return {n: "unknown" for n in names}
    return versions


def nginx_config(workdir: Path, root: Path, port: int) -> Path:
    user = "user root;\n" if os.geteuid() == 0 else ""  # workers must read the temp dir
    temp = "".join(
        f"    {kind}_temp_path {workdir / ('nginx-' + kind)};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    conf = f"""{user}worker_processes 2;
daemon off;
pid {workdir / "nginx.pid"};
error_log {workdir / "nginx-error.log"} warn;
events {{ worker_connections 1024; }}
http {{
    types {{ text/html html; application/octet-stream whl gz; }}
    default_type application/octet-stream;
    log_format bench '$remote_addr "$request" $status $body_bytes_sent "$http_user_agent"';
    access_log {workdir / "nginx-access.log"} bench;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
{temp}    server {{
        listen {HOST}:{port};
        root {root};
        index index.html;
    }}
}}
"""
    path = workdir / "nginx.conf"
    path.write_text(conf)
    return path


def start_nginx(workdir: Path, data: Dataset) -> Peer:
    exe = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else "")
    if not exe:
        raise PeerUnavailable("nginx not found (Debian/Ubuntu: apt-get install -y nginx-light)")
    port = free_port()
    conf = nginx_config(workdir, data.root, port)
    cmd = [exe, "-c", str(conf), "-p", str(workdir), "-e", str(workdir / "nginx-error.log")]
    peer = Peer("nginx", cmd, workdir)
    peer.start(port, "/simple/")
    return peer


def start_pypiserver(workdir: Path, data: Dataset, peers_dir: Path) -> Peer:
    bin_dir = ensure_venv(peers_dir, "pypiserver", PEER_PACKAGES["pypiserver"])
    port = free_port()
    cmd = [str(bin_dir / "pypi-server"), "run", "-p", str(port), "-i", HOST]
    cmd += ["-a", ".", "-P", ".", "--server", "auto", "--backend", "auto"]
    cmd += ["--disable-fallback", "--hash-algo", "sha256", str(data.files_dir)]
    peer = Peer("pypiserver", cmd, workdir)
    peer.start(port, "/simple/")
    return peer


def start_pypiserver_gunicorn(workdir: Path, data: Dataset, peers_dir: Path) -> Peer:
    bin_dir = ensure_venv(peers_dir, "pypiserver-gunicorn", PEER_PACKAGES["pypiserver-gunicorn"])
    port = free_port()
    app = (
        f"pypiserver:app(root={str(data.files_dir)!r}, authenticate=[], password_file='.', "
        "hash_algo='sha256', disable_fallback=True)"
    )
    cmd = [str(bin_dir / "gunicorn"), "--workers", "2", "--worker-class", "gthread"]
    cmd += ["--threads", "4", "--bind", f"{HOST}:{port}", app]
    peer = Peer("pypiserver-gunicorn", cmd, workdir)
    peer.start(port, "/simple/")
    return peer


def start_devpi(workdir: Path, nginx: Peer, peers_dir: Path) -> Peer:
    bin_dir = ensure_venv(peers_dir, "devpi", PEER_PACKAGES["devpi"])
    serverdir = workdir / "devpi-server"
    init = subprocess.run(
        [str(bin_dir / "devpi-init"), "--serverdir", str(serverdir), "--no-root-pypi"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if init.returncode != 0:
        raise PeerUnavailable(f"devpi-init failed ({init.returncode}): {init.stderr[-500:]}")
    port = free_port()
    cmd = [str(bin_dir / "devpi-server"), "--serverdir", str(serverdir)]
    cmd += ["--host", HOST, "--port", str(port)]
    peer = Peer("devpi", cmd, workdir)
    peer.start(port, "/+api")
    # A mirror index of the nginx static index (root's password is empty after devpi-init).
    with httpx.Client(base_url=peer.base_url, timeout=30.0) as client:
        accept = {"Accept": "application/json"}
        login = client.post("/+login", json={"user": "root", "password": ""}, headers=accept)
        if login.status_code != 200:
            raise PeerUnavailable(f"devpi login as root answered {login.status_code}")
        password = login.json()["result"]["password"]
        auth = base64.b64encode(f"root:{password}".encode()).decode()
        made = client.put(
            "/root/mirror",
            json={"type": "mirror", "mirror_url": f"{nginx.base_url}/simple/"},
            headers=accept | {"X-Devpi-Auth": auth},
        )
        if made.status_code not in (200, 201):
            raise PeerUnavailable(
                f"devpi: creating root/mirror answered {made.status_code}: {made.text[:300]}"
            )
    return peer


# -- targets ---------------------------------------------------------------------------------
@dataclass
class Target:
    """One server as the benchmark sees it."""

    name: str
    meter: GraftServer | Peer
    simple_url: str  # base of the project pages, ends with /
    headers: dict[str, str] = field(default_factory=dict)
    file_url: str | None = None  # the big wheel, as linked from its page
    # Graft with the blob server: the signed URL its file link redirects to (what wrk, which
    # follows no redirect, measures); the curl test goes through the redirect itself.
    direct_url: str | None = None
    small_url: str | None = None  # the wheel of pkg-01 (about 1 kB), as linked from its page
    page_info: dict[str, Any] = field(default_factory=dict)

    def page_url(self, project: str = PROJECT) -> str:
        return f"{self.simple_url}{project}/"

    @property
    def is_graft(self) -> bool:
        return isinstance(self.meter, GraftServer)

    @property
    def is_peer(self) -> bool:
        """pypiserver or devpi-server (not Graft, not the nginx baseline)."""
        return not self.is_graft and self.name != "nginx"


def links_of(body: bytes, content_type: str, page_url: str) -> dict[str, str]:
    """File name -> absolute URL (fragment dropped) of every file on a PEP 503/691 page."""
    out: dict[str, str] = {}
    if "json" in content_type:
        for f in json.loads(body)["files"]:
            out[f["filename"]] = urljoin(page_url, f["url"]).split("#", 1)[0]
        return out
    for href in re.findall(r'href="([^"]+)"', body.decode()):
        url = urljoin(page_url, href.replace("&amp;", "&")).split("#", 1)[0]
        out[urlsplit(url).path.rsplit("/", 1)[-1]] = url
    return out


def check_page(client: httpx.Client, target: Target, data: Dataset, project: str) -> bytes:
    """GET a project page as pip does; it must be a plain 200 listing exactly our files."""
    url = target.page_url(project)
    got = client.get(url, headers=target.headers | {"Accept": PIP_ACCEPT})
    if got.status_code != 200:
        raise BenchError(f"{target.name}: GET {url} answered {got.status_code}, expected 200")
    content_type = got.headers.get("content-type", "")
    links = links_of(got.content, content_type, url)
    if sorted(links) != sorted(data.projects[project]):
        missing = sorted(set(data.projects[project]) - set(links))
        raise BenchError(f"{target.name}: {url} lists {len(links)} files; missing {missing[:3]}")
    if project == PROJECT:
        target.page_info = {"content_type": content_type, "bytes": len(got.content)}
    if project == BIG_PROJECT:
        target.file_url = links[data.big]
    if project == SMALL_PROJECTS[0]:
        target.small_url = links[data.projects[project][0]]
    return got.content


def check_file(client: httpx.Client, target: Target, data: Dataset) -> float:
    """Download the big wheel once and check its sha256; the seconds it took."""
    assert target.file_url is not None
    digest, size = hashlib.sha256(), 0
    started = time.monotonic()
    with client.stream("GET", target.file_url, headers=target.headers, follow_redirects=True) as r:
        if r.status_code != 200:
            raise BenchError(f"{target.name}: GET {target.file_url} answered {r.status_code}")
        for chunk in r.iter_bytes(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    if digest.hexdigest() != data.sha256[data.big] or size != data.size(data.big):
        raise BenchError(f"{target.name}: the big wheel came back different ({size} bytes)")
    return time.monotonic() - started


class AccessLog:
    """nginx's access log: how many requests reached nginx since the last mark."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def mark(self) -> None:
        self.offset = self.path.stat().st_size if self.path.exists() else 0

    def since_mark(self) -> list[str]:
        if not self.path.exists():
            return []
        with self.path.open("rb") as f:
            f.seek(self.offset)
            return f.read().decode(errors="replace").splitlines()


# -- measuring -------------------------------------------------------------------------------
@dataclass
class Cell:
    target: str
    test: str  # "page" or "file"
    runs: list[WrkResult]
    upstream_requests: list[int] = field(default_factory=list)  # Graft -> nginx during the runs

    @property
    def rps(self) -> float:
        return statistics.fmean(r.requests_per_second for r in self.runs)

    @property
    def p50(self) -> float:
        return statistics.fmean(r.p50_ms for r in self.runs)

    @property
    def p99(self) -> float:
        return statistics.fmean(r.p99_ms for r in self.runs)

    @property
    def errors(self) -> int:
        return sum(r.non_2xx_3xx for r in self.runs)

    @property
    def mb_per_s(self) -> float:
        """wrk's Transfer/sec in MB/s (wrk's MB = 2^20 bytes)."""
        return statistics.fmean((r.transfer_bytes_per_second or 0) / (1 << 20) for r in self.runs)

    @property
    def cpu_us(self) -> float | None:
        values = [r.server_cpu_us_per_request for r in self.runs]
        return statistics.fmean(v for v in values if v is not None) if None not in values else None

    @property
    def steal(self) -> float | None:
        values = [r.cpu_steal_percent for r in self.runs if r.cpu_steal_percent is not None]
        return max(values) if values else None

    @property
    def other_cpu(self) -> float | None:
        values = [r.other_cpu_cores for r in self.runs if r.other_cpu_cores is not None]
        return max(values) if values else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "test": self.test,
            "rps_mean": round(self.rps, 1),
            "p50_ms_mean": round(self.p50, 3),
            "p99_ms_mean": round(self.p99, 3),
            "mb_per_s_mean": round(self.mb_per_s, 1) if self.test == "file" else None,
            "server_cpu_us_per_request_mean": round(self.cpu_us, 1) if self.cpu_us else None,
            "cpu_steal_percent_max": self.steal,
            "other_cpu_cores_max": self.other_cpu,
            "upstream_requests": self.upstream_requests,
            "runs": [r.as_dict() for r in self.runs],
        }


def wrk_once(
    target: Target,
    test: str,
    duration: str,
    args: argparse.Namespace,
    upstream_log: AccessLog | None,
    bystanders: Sequence[Target] = (),
) -> tuple[WrkResult, int]:
    """One wrk run. The other servers of the benchmark idle meanwhile; what CPU they still use
    is taken out of the run's "other load", which is then only other people's work (and the
    kernel's softirq time, which no process is charged for)."""
    extra: tuple[str, ...] = ()
    if test == "page":
        url, headers = target.page_url(), target.headers | {"Accept": PIP_ACCEPT}
        threads, connections = args.threads, args.connections
    elif test == "small":
        assert target.small_url is not None
        url, headers = target.small_url, dict(target.headers)
        threads, connections = args.threads, args.connections
    else:
        assert target.file_url is not None
        url, headers = target.direct_url or target.file_url, dict(target.headers)
        threads, connections = args.threads, args.file_connections
        extra = ("--timeout", "30s")
    if upstream_log is not None:
        upstream_log.mark()
    idle_before = sum(b.meter.cpu_seconds() for b in bystanders)
    result = run_wrk(
        url,
        threads=threads,
        connections=connections,
        duration=duration,
        headers=headers,
        server=target.meter,
        extra_args=extra,
    )
    idle_used = sum(b.meter.cpu_seconds() for b in bystanders) - idle_before
    if result.other_cpu_cores is not None and result.seconds:
        result.other_cpu_cores = round(
            max(0.0, result.other_cpu_cores - idle_used / result.seconds), 2
        )
    upstream = len(upstream_log.since_mark()) if upstream_log is not None else 0
    settle(target)
    if result.non_2xx_3xx and not target.is_peer:
        raise BenchError(
            f"{target.name}: {result.non_2xx_3xx} non-2xx/3xx answers on {url} out of "
            f"{result.requests}: the figure would be meaningless"
        )
    if result.non_2xx_3xx:  # a peer's failures are part of its result: reported, not fatal
        print(
            f"   warning: {target.name}: {result.non_2xx_3xx} non-2xx/3xx answers out of "
            f"{result.requests}",
            file=sys.stderr,
        )
    if sum(result.socket_errors.values()):
        print(f"   warning: {target.name}: socket errors {result.socket_errors}", file=sys.stderr)
    if (result.other_cpu_cores or 0) > QUIET_CORES:
        print(
            f"   warning: other processes used {result.other_cpu_cores:.2f} cores during this "
            "run: figures are noisy",
            file=sys.stderr,
        )
    return result, upstream


def settle(target: Target, timeout: float = 60.0, window: float = 0.5) -> None:
    """Wait until the server is idle again: a slow server still works through the requests
    queued when wrk stopped, which must not land in the next server's run."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = target.meter.cpu_seconds()
        time.sleep(window)
        if (target.meter.cpu_seconds() - before) / window < SETTLE_CORES:
            return
    print(f"   warning: {target.name} still busy {timeout:.0f}s after wrk", file=sys.stderr)


def measure(
    targets: list[Target], test: str, args: argparse.Namespace, nginx_log: AccessLog
) -> list[Cell]:
    cells = {t.name: Cell(t.name, test, []) for t in targets}
    if duration_seconds(args.warmup) > 0:
        for t in targets:
            wrk_once(t, test, args.warmup, args, None)
    others = {t.name: [o for o in targets if o is not t] for t in targets}
    for round_no in range(1, args.rounds + 1):
        order = targets if round_no % 2 else list(reversed(targets))  # ABC, CBA, ...
        for t in order:
            upstream_log = nginx_log if t.is_graft else None
            result, upstream = wrk_once(t, test, args.duration, args, upstream_log, others[t.name])
            cell = cells[t.name]
            cell.runs.append(result)
            if t.is_graft:
                cell.upstream_requests.append(upstream)
            if test in ("page", "small"):
                figure = f"{result.requests_per_second:>9.1f} req/s  p99 {result.p99_ms:.2f} ms"
            else:
                mb = (result.transfer_bytes_per_second or 0) / (1 << 20)
                figure = f"{mb:>8.1f} MB/s  ({result.requests} files)"
            cpu = _fmt(result.server_cpu_us_per_request, ".0f")
            steal = _fmt(result.cpu_steal_percent, ".1f")
            other = _fmt(result.other_cpu_cores, ".2f")
            other += f" (softirq {_fmt(result.softirq_cores, '.2f')})"
            print(
                f"   {test} round {round_no} {t.name:<22} {figure}  server CPU {cpu} µs/req  "
                f"steal {steal} %  other load {other} cores"
                + (f"  upstream requests {upstream}" if t.is_graft else ""),
                file=sys.stderr,
                flush=True,
            )
    return list(cells.values())


@dataclass
class CurlCell:
    """End-to-end file downloads by curl (redirects followed), `connections` at once."""

    target: str
    mb_per_s: list[float] = field(default_factory=list)
    cpu_ms_per_file: list[float] = field(default_factory=list)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.mb_per_s)

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "mb_per_s_mean": round(self.mean, 1),
            "runs_mb_per_s": [round(x, 1) for x in self.mb_per_s],
            "server_cpu_ms_per_file": [round(x, 1) for x in self.cpu_ms_per_file],
        }


def curl_once(target: Target, data: Dataset, args: argparse.Namespace) -> tuple[float, float]:
    """`--file-connections` curl processes, each downloading the big wheel `--curl-files`
    times over one kept-alive connection, following redirects; MB/s (2^20) and server CPU."""
    assert target.file_url is not None
    cmd = ["curl", "-sS", "--fail", "--location", "--max-redirs", "3"]
    for key, value in target.headers.items():
        cmd += ["-H", f"{key}: {value}"]
    for _ in range(args.curl_files):
        cmd += [target.file_url, "-o", os.devnull]
    cpu_before = target.meter.cpu_seconds()
    started = time.monotonic()
    procs = [
        subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for _ in range(args.file_connections)
    ]
    failed = [p.stderr.read().decode() for p in procs if p.wait() != 0 and p.stderr]
    seconds = time.monotonic() - started
    files = args.curl_files * len(procs)
    cpu = target.meter.cpu_seconds() - cpu_before
    settle(target)
    if failed:
        raise BenchError(f"{target.name}: curl failed: {failed[0][:300]}")
    return files * data.size(data.big) / seconds / (1 << 20), cpu / files * 1000


def measure_curl(targets: list[Target], data: Dataset, args: argparse.Namespace) -> list[CurlCell]:
    cells = {t.name: CurlCell(t.name) for t in targets}
    for t in targets:  # warm-up
        curl_once(t, data, argparse.Namespace(**{**vars(args), "curl_files": 2}))
    for round_no in range(1, args.rounds + 1):
        order = targets if round_no % 2 else list(reversed(targets))
        for t in order:
            mb, cpu = curl_once(t, data, args)
            cells[t.name].mb_per_s.append(mb)
            cells[t.name].cpu_ms_per_file.append(cpu)
            print(
                f"   curl round {round_no} {t.name:<34} {mb:>8.1f} MB/s  server CPU "
                f"{cpu:.1f} ms/file",
                file=sys.stderr,
                flush=True,
            )
    return list(cells.values())


def pip_env() -> dict[str, str]:
    """No PIP_* from this machine (they add find-links and extra indexes), no pip config."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    return env


def pip_download(index_url: str, data: Dataset, workdir: Path) -> float:
    """Wall time of one `pip download` of the 20 small projects; checks what arrived."""
    dest = Path(tempfile.mkdtemp(prefix="pip-dl-", dir=workdir))
    try:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-cache-dir"]
        cmd += ["--disable-pip-version-check", "--no-input", "-q", "-d", str(dest)]
        cmd += ["--index-url", index_url, *SMALL_PROJECTS]
        started = time.monotonic()
        done = subprocess.run(
            cmd, env=pip_env(), capture_output=True, text=True, timeout=300, check=False
        )
        elapsed = time.monotonic() - started
        if done.returncode != 0:
            masked = re.sub(r"//[^/@]+@", "//***@", done.stderr)
            raise BenchError(f"pip download failed ({done.returncode}): {masked[-1500:]}")
        got = {p.name: _sha256(p) for p in dest.iterdir()}
        wanted = {n: data.sha256[n] for p in SMALL_PROJECTS for n in data.projects[p]}
        if got != wanted:
            raise BenchError(f"pip download brought {sorted(got)}, expected {sorted(wanted)}")
        return elapsed
    finally:
        shutil.rmtree(dest, ignore_errors=True)


@dataclass
class PipResult:
    times: dict[str, list[float]]
    warmups: dict[str, list[int]]  # upstream requests of each warm-up run, per Graft index
    upstream: dict[str, list[int]]  # upstream requests during the measured runs


def measure_pip(
    indexes: dict[str, str],
    data: Dataset,
    workdir: Path,
    runs: int,
    nginx_log: AccessLog,
    max_warmups: int = 5,
) -> PipResult:
    """Warm-up, then `runs` alternating runs per index. Graft's upstream pages are cached per
    worker process, so one warm-up run leaves part of them unseen by the other worker, whose
    first request for a page then revalidates it upstream: Graft indexes are warmed until a
    run sends nothing upstream (at most `max_warmups` runs)."""
    warmups: dict[str, list[int]] = {}
    for name, url in indexes.items():
        for _ in range(max_warmups if name != "nginx" else 1):
            nginx_log.mark()
            seconds = pip_download(url, data, workdir)
            went_up = len(nginx_log.since_mark()) if name != "nginx" else 0
            warmups.setdefault(name, []).append(went_up)
            print(
                f"   pip warm-up {name:<22} {seconds:.2f} s"
                + (f"  upstream requests {went_up}" if name != "nginx" else ""),
                file=sys.stderr,
                flush=True,
            )
            if not went_up:
                break
    times: dict[str, list[float]] = {name: [] for name in indexes}
    upstream: dict[str, list[int]] = {name: [] for name in indexes if name != "nginx"}
    names = list(indexes)
    for run in range(runs):
        for name in names if run % 2 == 0 else reversed(names):
            nginx_log.mark()
            seconds = pip_download(indexes[name], data, workdir)
            times[name].append(seconds)
            extra = ""
            if name != "nginx":
                upstream[name].append(len(nginx_log.since_mark()))
                extra = f"  upstream requests {upstream[name][-1]}"
            print(
                f"   pip run {run + 1} {name:<22} {seconds:.2f} s{extra}",
                file=sys.stderr,
                flush=True,
            )
    return PipResult(times, {k: v for k, v in warmups.items() if k != "nginx"}, upstream)


def wait_for_quiet(max_wait: float, window: float = 5.0) -> float | None:
    """Wait (up to max_wait s) until other processes use under QUIET_CORES; the last load."""
    deadline = time.monotonic() + max_wait
    load: float | None = None
    while True:
        before = system_cpu()
        time.sleep(window)
        after = system_cpu()
        if before is None or after is None:
            return None
        load = (after.busy - before.busy) / window
        if load <= QUIET_CORES or time.monotonic() > deadline:
            if load > QUIET_CORES:
                print(f"   warning: still {load:.2f} cores busy; measuring anyway", file=sys.stderr)
            return round(load, 2)
        print(f"   machine busy ({load:.2f} cores used by others); waiting", file=sys.stderr)


# -- profiling -------------------------------------------------------------------------------
def profile(target: Target, test: str, args: argparse.Namespace, out_dir: Path) -> Path | None:
    """py-spy (collapsed stacks, all Graft processes) during one more wrk run."""
    py_spy = Path(sys.executable).parent / "py-spy"
    if not py_spy.exists() or not isinstance(target.meter, GraftServer):
        print("   py-spy not found next to the venv python; no profile", file=sys.stderr)
        return None
    proc = target.meter.proc
    assert proc is not None
    out = out_dir / f"pyspy-{target.name.replace(' ', '_')}-{test}.txt"
    seconds = int(duration_seconds(args.duration))
    cmd = [str(py_spy), "record", "--subprocesses", "--nonblocking", "-r", "200", "-f", "raw"]
    cmd += ["-d", str(seconds), "-o", str(out), "-p", str(proc.pid)]
    spy = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        time.sleep(1.0)
        wrk_once(target, test, f"{max(1, seconds - 2)}s", args, None)
        _, err = spy.communicate(timeout=seconds + 30)
    finally:
        if spy.poll() is None:
            spy.kill()
            spy.wait()
    if not out.exists():
        print(f"   py-spy wrote nothing: {err.decode(errors='replace')[-300:]}", file=sys.stderr)
        return None
    return out


def summarize_profile(path: Path, top: int = 15) -> list[tuple[str, float, float]]:
    """(frame, self %, total %) of the busiest frames of a py-spy raw (collapsed) profile."""
    self_time: Counter[str] = Counter()
    total_time: Counter[str] = Counter()
    samples = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        # --subprocesses: the stack starts with one `process PID:"cmd"` per ancestor.
        frames = [_short_frame(f) for f in stack.split(";") if f and not f.startswith("process ")]
        samples += count
        if not frames:
            frames = ["(no Python frame: granian's native threads)"]
        self_time[frames[-1]] += count
        for frame in set(frames):
            total_time[frame] += count
    if not samples:
        return []
    return [
        (frame, 100 * n / samples, 100 * total_time[frame] / samples)
        for frame, n in self_time.most_common(top)
    ]


def _short_frame(frame: str) -> str:
    """`func (path/to/site-packages/pkg/mod.py:12)` -> `func (pkg/mod.py)`."""
    m = re.match(r"(.*) \((.*?):\d+\)$", frame)
    if not m:
        return frame
    path = m.group(2)
    for marker in ("site-packages/", "/src/", "/lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{m.group(1)} ({path})"


# -- reporting -------------------------------------------------------------------------------
def _fmt(value: float | None, spec: str, suffix: str = "") -> str:
    return "" if value is None else f"{value:{spec}}{suffix}"


def _tail(c: Cell) -> str:
    """The last columns of a wrk table row: steal, other load, non-2xx answers."""
    return f"{_fmt(c.steal, '.1f', ' %')} | {_fmt(c.other_cpu, '.2f', ' cores')} | {c.errors} |"


def markdown(
    pages: list[Cell],
    files: list[Cell],
    curls: list[CurlCell],
    small: list[Cell],
    pip_times: dict[str, list[float]],
    pip_upstream: dict[str, Any],
    targets: dict[str, Target],
    skipped: dict[str, str],
    args: argparse.Namespace,
) -> str:
    out: list[str] = []
    if pages:
        out += [
            f"Pages: `wrk -t{args.threads} -c{args.connections} -d{args.duration} --latency` "
            f"on `{PROJECT}` ({VERSIONS * 2} files), pip's Accept header, mean of "
            f"{args.rounds} alternating rounds.",
            "",
            "| server | req/s | runs (req/s) | p50 ms | p99 ms | server CPU µs/req | page "
            "| max steal | max other load | non-2xx |",
            "|---|---:|---|---:|---:|---:|---|---:|---:|---:|",
        ]
    for c in pages:
        info = targets[c.target].page_info
        page = f"{info.get('content_type', '').split(';')[0]}, {info.get('bytes', 0)} B"
        runs = " / ".join(f"{r.requests_per_second:.0f}" for r in c.runs)
        out.append(
            f"| {c.target} | {c.rps:.0f} | {runs} | {c.p50:.2f} | {c.p99:.2f} "
            f"| {_fmt(c.cpu_us, '.0f')} | {page} | {_tail(c)}"
        )
    nginx_file = next((c for c in files if c.target == "nginx"), None)
    if files:
        out += [
            "",
            f"64 MiB file: `wrk -t{args.threads} -c{args.file_connections} -d{args.duration}`,"
            " MB/s = wrk's Transfer/sec (1 MB = 2^20 bytes), mean of "
            f"{args.rounds} alternating rounds.",
            "",
            "| server | MB/s | runs (MB/s) | files/s | ÷ nginx | server CPU ms/file | max steal "
            "| max other load | non-2xx |",
            "|---|---:|---|---:|---:|---:|---:|---:|---:|",
        ]
    for c in files:
        ratio = c.mb_per_s / nginx_file.mb_per_s if nginx_file and nginx_file.mb_per_s else None
        runs = " / ".join(f"{(r.transfer_bytes_per_second or 0) / (1 << 20):.0f}" for r in c.runs)
        out.append(
            f"| {c.target} | {c.mb_per_s:.0f} | {runs} | {c.rps:.1f} | {_fmt(ratio, '.2f')} "
            f"| {_fmt(c.cpu_us and c.cpu_us / 1000, '.1f')} | {_tail(c)}"
        )
    nginx_curl = next((c for c in curls if c.target == "nginx"), None)
    if curls:
        out += [
            "",
            f"64 MiB file end to end: {args.file_connections} curl processes at once, each "
            f"downloading it {args.curl_files} times over one connection (`curl -L`: Graft's "
            "redirect to the blob server included), mean of "
            f"{args.rounds} alternating rounds.",
            "",
            "| server | MB/s | runs (MB/s) | ÷ nginx | server CPU ms/file |",
            "|---|---:|---|---:|---:|",
        ]
    for cc in curls:
        ratio = cc.mean / nginx_curl.mean if nginx_curl and nginx_curl.mean else None
        runs = " / ".join(f"{x:.0f}" for x in cc.mb_per_s)
        cpu = statistics.fmean(cc.cpu_ms_per_file)
        out.append(f"| {cc.target} | {cc.mean:.0f} | {runs} | {_fmt(ratio, '.2f')} | {cpu:.1f} |")
    if small:
        out += [
            "",
            f"1 kB wheel (`{SMALL_PROJECTS[0]}`): `wrk -t{args.threads} -c{args.connections} "
            f"-d{args.duration} --latency`, mean of {args.rounds} alternating rounds.",
            "",
            "| server | req/s | runs (req/s) | p50 ms | p99 ms | server CPU µs/req | max steal "
            "| max other load | non-2xx |",
            "|---|---:|---|---:|---:|---:|---:|---:|---:|",
        ]
    for c in small:
        runs = " / ".join(f"{r.requests_per_second:.0f}" for r in c.runs)
        out.append(
            f"| {c.target} | {c.rps:.0f} | {runs} | {c.p50:.2f} | {c.p99:.2f} "
            f"| {_fmt(c.cpu_us, '.0f')} | {_tail(c)}"
        )
    if pip_times:
        base = statistics.median(pip_times["nginx"]) if "nginx" in pip_times else None
        out += [
            *([""] if out else []),
            f"`pip download` of {len(SMALL_PROJECTS)} projects (--no-deps --no-cache-dir), "
            f"median of {args.pip_runs} alternating runs after warm-up (Graft: until a run sent "
            "nothing upstream).",
            "",
            "| index | median s | runs (s) | ÷ nginx | upstream requests: warm-ups / measured |",
            "|---|---:|---|---:|---|",
        ]
        for name, times in pip_times.items():
            median = statistics.median(times)
            ratio = median / base if base else None
            runs = " / ".join(f"{t:.2f}" for t in times)
            warm = pip_upstream.get("warmups", {}).get(name)
            measured = pip_upstream.get("measured", {}).get(name)
            went_up = f"{' + '.join(map(str, warm))} / {sum(measured)}" if warm and measured else ""
            out.append(f"| {name} | {median:.2f} | {runs} | {_fmt(ratio, '.2f')} | {went_up} |")
    if skipped:
        out += [""] + [f"- not measured: {name}: {why}" for name, why in skipped.items()]
    return "\n".join(out)


def verdicts(
    pages: list[Cell],
    files: list[Cell],
    curls: list[CurlCell],
    pip_times: dict[str, list[float]],
) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    by_file = {c.target: c for c in files}
    peers = [c for c in pages if c.target.startswith(("pypiserver", "devpi"))]
    best = max(peers, key=lambda c: c.rps) if peers else None
    for c in pages:
        if not c.target.startswith("graft"):
            continue
        if best is not None:
            what = f"pages ÷ fastest peer ({best.target})"
            found.append(_verdict(c.target, what, c.rps / best.rps, 5.0))
        found.append(_verdict(c.target, "page p99 ms", c.p99, 20.0, higher_is_better=False))
    nginx_file = by_file.get("nginx")
    for c in files:
        if c.target.startswith("graft") and nginx_file and nginx_file.mb_per_s:
            found.append(
                _verdict(c.target, "file MB/s ÷ nginx", c.mb_per_s / nginx_file.mb_per_s, 0.9)
            )
    nginx_curl = next((c for c in curls if c.target == "nginx"), None)
    for cc in curls:
        if cc.target.startswith("graft") and nginx_curl and nginx_curl.mean:
            what = "file end to end MB/s ÷ nginx"
            found.append(_verdict(cc.target, what, cc.mean / nginx_curl.mean, 0.9))
    if "nginx" in pip_times:
        base = statistics.median(pip_times["nginx"])
        for name, times in pip_times.items():
            if name.startswith("graft"):
                ratio = statistics.median(times) / base
                found.append(
                    _verdict(name, "pip download time ÷ nginx", ratio, 1.1, higher_is_better=False)
                )
    return found


def _verdict(
    target: str, what: str, value: float, limit: float, *, higher_is_better: bool = True
) -> dict[str, Any]:
    met = value >= limit if higher_is_better else value <= limit
    return {
        "target": target,
        "what": what,
        "value": round(value, 3),
        "limit": f"{'>=' if higher_is_better else '<='} {limit:g}",
        "met": met,
    }


def versions(peer_bins: dict[str, Path]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    with contextlib.suppress(OSError):
        done = subprocess.run([nginx, "-v"], capture_output=True, text=True, check=False)
        out["nginx"] = (done.stderr or done.stdout).strip().removeprefix("nginx version: ")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "--version"],
        capture_output=True,
        text=True,
        env=pip_env(),
        check=False,
    )
    out["pip"] = done.stdout.split()[1] if done.stdout.startswith("pip ") else "unknown"
    if "pypiserver" in peer_bins:
        found = venv_versions(peer_bins["pypiserver"], ["pypiserver", "waitress", "watchdog"])
        out["pypiserver"] = found
    if "pypiserver-gunicorn" in peer_bins:
        found = venv_versions(
            peer_bins["pypiserver-gunicorn"], ["pypiserver", "gunicorn", "watchdog"]
        )
        out["pypiserver-gunicorn"] = found
    if "devpi" in peer_bins:
        out["devpi"] = venv_versions(peer_bins["devpi"], ["devpi-server", "waitress"])
    return out


# -- main ------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--workers", type=int, nargs="+", default=[2], help="Graft worker counts (2)")
    p.add_argument(
        "--peers",
        nargs="*",
        choices=PEERS,
        default=None,
        help="peers besides nginx (default all; none: --peers)",
    )
    p.add_argument(
        "--peers-dir",
        type=Path,
        default=Path.home() / ".cache" / "graft-bench",
        help="where the peers' venvs live (~/.cache/graft-bench)",
    )
    p.add_argument("--duration", default="10s", help="wrk -d per measured run (10s)")
    p.add_argument("--connections", type=int, default=64, help="wrk -c for pages (64)")
    p.add_argument("--file-connections", type=int, default=4, help="wrk -c for the file (4)")
    p.add_argument("--threads", type=int, default=2, help="wrk -t (2)")
    p.add_argument("--rounds", type=int, default=2, help="measured runs per server (2)")
    p.add_argument("--warmup", default="3s", help="wrk run per server before measuring (3s)")
    p.add_argument("--pip-runs", type=int, default=3, help="pip download runs per index (3)")
    p.add_argument("--big-mib", type=int, default=64, help="size of the big wheel (64 MiB)")
    p.add_argument(
        "--tests",
        nargs="*",
        choices=("pages", "file", "curl", "pip", "small"),
        default=["pages", "file", "curl", "pip"],
        help="what to measure (pages file curl pip); small = req/s of a 1 kB wheel; "
        "curl = the file end to end with redirects followed",
    )
    p.add_argument(
        "--blob-server",
        choices=("off", "on", "both"),
        default="both",
        help="run Graft without and/or with `--blob-port` (the zero-copy blob server) (both)",
    )
    p.add_argument("--curl-files", type=int, default=30, help="downloads per curl process (30)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SETTING=VALUE",
        help="an extra Graft setting, e.g. --set granian_interface=rsgi (repeatable)",
    )
    p.add_argument(
        "--profile", action="store_true", help="also py-spy Graft (first worker count) on each path"
    )
    p.add_argument(
        "--wait-quiet",
        type=float,
        default=300.0,
        help="wait up to this many s for other load to drop (300)",
    )
    p.add_argument("--no-json", action="store_true", help="do not write bench/results/*.json")
    args = p.parse_args(argv)
    try:
        args.set = dict(item.split("=", 1) for item in args.set)
    except ValueError:
        p.error("--set takes SETTING=VALUE")
    if args.peers is None:
        args.peers = list(PEERS)
    if min(args.workers) < 1 or args.rounds < 1 or args.threads < 1 or args.pip_runs < 1:
        p.error("--workers, --rounds, --threads and --pip-runs must be at least 1")
    if min(args.connections, args.file_connections) < args.threads:
        p.error("--connections and --file-connections must be at least --threads")
    for name in ("duration", "warmup"):
        try:
            duration_seconds(getattr(args, name))
        except ValueError as exc:
            p.error(f"--{name}: {exc}")
    return args


def graft_target(srv: GraftServer, blob_server: bool = False) -> tuple[Target, str]:
    token = make_read_token(srv)
    basic = base64.b64encode(f"{BASIC_USER}:{token}".encode()).decode()
    name = f"graft ({srv.workers} worker{'s' if srv.workers > 1 else ''}"
    name += ", blob server)" if blob_server else ")"
    target = Target(name, srv, f"{srv.base_url}/pypi/simple/", {"Authorization": f"Basic {basic}"})
    index = f"http://{BASIC_USER}:{token}@{HOST}:{srv.port}/pypi/simple/"
    return target, index


def run(args: argparse.Namespace, stack: contextlib.ExitStack) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="graft-bench-pypi-"))
    stack.callback(shutil.rmtree, workdir, True)
    workdir.chmod(0o755)
    print(f"== building the data set in {workdir}", file=sys.stderr, flush=True)
    data = build_dataset(workdir / "tree", args.big_mib << 20)
    print("== starting nginx, peers and Graft", file=sys.stderr, flush=True)
    nginx = start_nginx(workdir, data)
    stack.callback(nginx.stop)
    nginx_target = Target("nginx", nginx, f"{nginx.base_url}/simple/")
    skipped: dict[str, str] = {}
    peers: list[Target] = []
    peer_bins: dict[str, Path] = {}
    for peer in args.peers:
        try:
            if peer == "pypiserver":
                srv = start_pypiserver(workdir, data, args.peers_dir)
                stack.callback(srv.stop)
                peers.append(Target("pypiserver", srv, f"{srv.base_url}/simple/"))
            elif peer == "pypiserver-gunicorn":
                srv = start_pypiserver_gunicorn(workdir, data, args.peers_dir)
                stack.callback(srv.stop)
                peers.append(Target("pypiserver-gunicorn", srv, f"{srv.base_url}/simple/"))
            else:
                srv = start_devpi(workdir, nginx, args.peers_dir)
                stack.callback(srv.stop)
                peers.append(Target("devpi-server", srv, f"{srv.base_url}/root/mirror/+simple/"))
            peer_bins[peer] = args.peers_dir / f"{peer}-venv" / "bin"
        except (PeerUnavailable, OSError, subprocess.SubprocessError, httpx.HTTPError) as exc:
            print(f"   {peer} skipped: {exc}", file=sys.stderr)
            skipped[peer] = str(exc)
    # a long TTL: the measured runs must not revalidate pages cached at warm-up (600 s default)
    upstream = [
        {"ecosystem": "pypi", "name": "up", "url": f"{nginx.base_url}/simple/", "ttl_seconds": 7200}
    ]
    grafts: list[Target] = []
    pip_indexes: dict[str, str] = {"nginx": f"{nginx.base_url}/simple/"}
    blob_variants = {"off": [False], "on": [True], "both": [False, True]}[args.blob_server]
    for workers in args.workers:
        for blob_server in blob_variants:
            settings = {"upstream": json.dumps(upstream), "access_log": "true", **args.set}
            if blob_server:
                settings |= {"blob_server_port": str(free_port()), "blob_url_ttl_seconds": "3600"}
            srv_g = stack.enter_context(
                GraftServer(server="granian", workers=workers, settings=settings)
            )
            target, index = graft_target(srv_g, blob_server)
            grafts.append(target)
            if not blob_server or len(blob_variants) == 1:  # pip's small files never redirect
                pip_indexes[target.name] = index
    targets = [*grafts, *peers, nginx_target]

    print("== checking pages and warming caches", file=sys.stderr, flush=True)
    with httpx.Client(timeout=120.0) as client:
        for t in targets:
            for project in (PROJECT, BIG_PROJECT, SMALL_PROJECTS[0]):
                check_page(client, t, data, project)
        file_targets = [t for t in targets if t.file_url]
        first = {t.name: check_file(client, t, data) for t in file_targets}  # pull-through
        for t in file_targets:
            check_file(client, t, data)  # the cached copy
        for t in file_targets:
            print(f"   {t.name}: first download {first[t.name]:.2f} s", file=sys.stderr)
            assert t.file_url is not None
            hop = client.get(t.file_url, headers=t.headers)
            if hop.status_code == 302:  # Graft with the blob server
                t.direct_url = hop.headers["location"]
    nginx_log = AccessLog(workdir / "nginx-access.log")
    meta = machine_info() | {"peer_versions": versions(peer_bins)}
    meta["other_load_before_cores"] = wait_for_quiet(args.wait_quiet)

    pages: list[Cell] = []
    files: list[Cell] = []
    pip_times: dict[str, list[float]] = {}
    pip_upstream: dict[str, Any] = {}
    if "pages" in args.tests:
        print("== pages", file=sys.stderr, flush=True)
        pages = measure(targets, "page", args, nginx_log)
    if "file" in args.tests:
        print("== 64 MiB file", file=sys.stderr, flush=True)
        files = measure([t for t in targets if t.file_url], "file", args, nginx_log)
    curls: list[CurlCell] = []
    if "curl" in args.tests:
        print("== 64 MiB file end to end (curl, redirects followed)", file=sys.stderr, flush=True)
        curls = measure_curl([t for t in targets if t.file_url], data, args)
    small: list[Cell] = []
    if "small" in args.tests:
        print("== 1 kB wheel", file=sys.stderr, flush=True)
        small = measure(targets, "small", args, nginx_log)
    if "pip" in args.tests:
        print("== pip download", file=sys.stderr, flush=True)
        order = {name: pip_indexes[name] for name in [*pip_indexes][1:]} | {
            "nginx": pip_indexes["nginx"]
        }
        pip = measure_pip(order, data, workdir, args.pip_runs, nginx_log)
        pip_times = pip.times
        pip_upstream = {"warmups": pip.warmups, "measured": pip.upstream}
    profiles: dict[str, Any] = {}
    if args.profile:
        out_dir = workdir / "profiles"
        out_dir.mkdir()
        for test in ("page", "file", "small"):
            print(f"== py-spy: {grafts[0].name} {test}", file=sys.stderr, flush=True)
            path = profile(grafts[0], test, args, out_dir)
            if path is not None:
                keep = BENCH_DIR / "results" / f"{path.stem}-{time.strftime('%Y%m%dT%H%M%S')}.txt"
                keep.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, keep)
                profiles[test] = {"file": str(keep), "top": summarize_profile(path)}
    for t in grafts:
        assert isinstance(t.meter, GraftServer)
        errors = [line for line in t.meter.stderr_tail(200).splitlines() if "Traceback" in line]
        if errors:
            print(f"   warning: {t.name} logged tracebacks: see its stderr", file=sys.stderr)
    return {
        "machine": meta,
        "targets": {
            t.name: {"page_url": t.page_url(), "file_url": t.file_url, "page": t.page_info}
            for t in targets
        },
        "skipped": skipped,
        "pages": pages,
        "files": files,
        "curls": curls,
        "small": small,
        "pip_times": pip_times,
        "pip_upstream_requests": pip_upstream,
        "profiles": profiles,
        "target_objects": {t.name: t for t in targets},
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with cleanup_on_interrupt(), contextlib.ExitStack() as stack:
        try:
            out = run(args, stack)
        except BenchError as exc:
            print(f"\nbenchmark failed: {exc}", file=sys.stderr)
            return 2
    pages, files, small, pip_times = out["pages"], out["files"], out["small"], out["pip_times"]
    curls = out["curls"]
    table = markdown(
        pages,
        files,
        curls,
        small,
        pip_times,
        out["pip_upstream_requests"],
        out["target_objects"],
        out["skipped"],
        args,
    )
    found = verdicts(pages, files, curls, pip_times)
    print(table)
    print()
    for v in found:
        print(
            f"- {v['target']}: {v['what']} = {v['value']:g} (target {v['limit']}): "
            + ("met" if v["met"] else "NOT met")
        )
    for test, prof in out["profiles"].items():
        print(f"\npy-spy, Graft, {test} path ({prof['file']}): self % / total %")
        for frame, self_pct, total_pct in prof["top"]:
            print(f"  {self_pct:5.1f} {total_pct:5.1f}  {frame}")
    if not args.no_json:
        path = write_json(
            "pypi",
            {
                "benchmark": "pypi",
                "machine": out["machine"],
                "params": {
                    k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                },
                "targets": out["targets"],
                "skipped": out["skipped"],
                "pages": [c.as_dict() for c in pages],
                "files": [c.as_dict() for c in files],
                "files_end_to_end": [c.as_dict() for c in curls],
                "small_file": [c.as_dict() for c in small],
                "pip_download_seconds": pip_times,
                "pip_upstream_requests": out["pip_upstream_requests"],
                "verdicts": found,
                "profiles": out["profiles"],
                "markdown": table,
            },
        )
        print(f"\nJSON: {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
