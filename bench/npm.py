"""npm registry benchmark (issue 6): Graft side by side with Verdaccio and nginx.

Everything runs on 127.0.0.1 in one run, on the same data, which the script builds in a temp
dir: a package `bench-pkg` (40 versions, each with dependencies and a small tarball) and
`bench-big` (one version whose tarball is 64 MiB of random bytes).

- nginx (worker_processes 2, sendfile) serves the packuments and tarballs as a static tree:
  Graft's upstream, and the baseline for the tarball.
- Verdaccio (installed once with npm under ~/.cache/graft-bench/verdaccio, pinned) serves the
  same two packages from its own storage, anonymous read (its best case: no auth).
- Graft (`graft serve --workers N`, granian, access log on) pulls through from nginx.

Measurements, warm caches, alternating servers round by round:
1. packument: `wrk -t2 -c64 -d10s --latency` on `bench-pkg` with the Accept header npm
   sends when installing (the abbreviated form), Graft with a read token; each answer is
   checked first (a 200 listing the 40 versions, tarball URLs on the server itself);
2. tarball: `wrk -t2 -c4 -d10s` on the 64 MiB tarball, MB/s = wrk's Transfer/sec; each
   copy is downloaded and sha512-checked first, and nginx's access log shows that Graft did
   not go upstream during the runs. Graft runs without and with its zero-copy blob server
   (`--blob-server off|on|both`); with it the tarball answers 302 to a signed URL, which npm
   follows and wrk, following no redirect, is pointed at directly.

    .venv/bin/python bench/npm.py                  # Graft with 2 workers
    .venv/bin/python bench/npm.py --workers 2 1    # and with 1

Targets (issue 6): packuments >= 10x Verdaccio with p99 <= 20 ms; tarball >= 0.9x nginx.
Not a test: run it by hand, under `flock -x /tmp/graft-quiet.lock`, on a quiet machine.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import io
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from _common import (
    HOST,
    BenchError,
    GraftServer,
    WrkResult,
    cleanup_on_interrupt,
    free_port,
    machine_info,
    make_read_token,
    run_wrk,
    write_json,
)
from pypi import AccessLog, Peer, PeerUnavailable

PACKAGE = "bench-pkg"
BIG = "bench-big"
VERSIONS = 40
NPM_ACCEPT = "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*"
VERDACCIO = "verdaccio@6.8.0"
# As tested on this kind of machine: Verdaccio 6.8 installs only with node-fetch pinned.
VERDACCIO_PACKAGE_JSON = {
    "private": True,
    "dependencies": {"verdaccio": "6.8.0"},
    "overrides": {"node-fetch": "2.7.0"},
}
QUIET_CORES = 0.3


# -- the data set ---------------------------------------------------------------------------
def _tgz(name: str, version: str, payload: bytes = b"") -> bytes:
    manifest = {
        "name": name,
        "version": version,
        "description": f"{name} for the benchmark",
        "main": "index.js",
        "license": "MIT",
        "dependencies": {"left-pad": "^1.3.0", "debug": "^4.3.4", "ms": "^2.1.2"},
    }
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=1) as tar:
        files = {"package/package.json": json.dumps(manifest).encode(), "package/index.js": b"1"}
        if payload:
            files["package/blob.bin"] = payload
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size, info.mtime = len(data), 1700000000
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@dataclass
class Dataset:
    root: Path  # the static tree nginx serves
    tarballs: dict[str, bytes] = field(default_factory=dict)  # file name -> bytes
    docs: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> version docs

    def sha512(self, filename: str) -> str:
        return hashlib.sha512(self.tarballs[filename]).hexdigest()


def build_dataset(root: Path, big_bytes: int) -> Dataset:
    data = Dataset(root)
    (root / "tarballs").mkdir(parents=True)
    plan = [(PACKAGE, f"1.{i}.0", b"") for i in range(VERSIONS)]
    plan.append((BIG, "1.0.0", random.Random(6).randbytes(big_bytes)))
    for name, version, payload in plan:
        blob = _tgz(name, version, payload)
        filename = f"{name}-{version}.tgz"
        data.tarballs[filename] = blob
        (root / "tarballs" / filename).write_bytes(blob)
        with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
            member = tar.extractfile("package/package.json")
            assert member is not None
            doc = json.loads(member.read())
        doc["_id"] = f"{name}@{version}"
        doc["dist"] = {
            "integrity": "sha512-" + base64.b64encode(hashlib.sha512(blob).digest()).decode(),
            "shasum": hashlib.sha1(blob).hexdigest(),
            "tarball": f"tarballs/{filename}",  # made absolute per server below
        }
        data.docs.setdefault(name, {})[version] = doc
    return data


def packument(data: Dataset, name: str, tarball_base: str) -> dict[str, Any]:
    versions = {}
    for version, doc in data.docs[name].items():
        d = json.loads(json.dumps(doc))
        d["dist"]["tarball"] = tarball_base + d["dist"]["tarball"].removeprefix("tarballs/")
        versions[version] = d
    latest = list(versions)[-1]
    return {
        "_id": name,
        "name": name,
        "description": f"{name} for the benchmark",
        "dist-tags": {"latest": latest},
        "versions": versions,
        "time": {v: "2024-01-02T03:04:05.000Z" for v in versions}
        | {"created": "2024-01-02T03:04:05.000Z", "modified": "2024-01-02T03:04:05.000Z"},
        "readme": "# bench\n" * 200,
    }


# -- peers -------------------------------------------------------------------------------------
def start_nginx(workdir: Path, data: Dataset) -> Peer:
    exe = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else "")
    if not exe:
        raise PeerUnavailable("nginx not found (Debian/Ubuntu: apt-get install -y nginx-light)")
    port = free_port()
    base = f"http://{HOST}:{port}/tarballs/"
    for name in data.docs:
        (data.root / name).write_text(json.dumps(packument(data, name, base)))
    user = "user root;\n" if os.geteuid() == 0 else ""
    temp = "".join(
        f"    {kind}_temp_path {workdir / ('nginx-' + kind)};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    conf = workdir / "nginx.conf"
    conf.write_text(
        f"""{user}worker_processes 2;
daemon off;
pid {workdir / "nginx.pid"};
error_log {workdir / "nginx-error.log"} warn;
events {{ worker_connections 1024; }}
http {{
    types {{ application/octet-stream tgz; }}
    default_type application/json;
    log_format bench '$remote_addr "$request" $status $body_bytes_sent';
    access_log {workdir / "nginx-access.log"} bench;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
{temp}    server {{
        listen {HOST}:{port};
        root {data.root};
    }}
}}
"""
    )
    cmd = [exe, "-c", str(conf), "-p", str(workdir), "-e", str(workdir / "nginx-error.log")]
    peer = Peer("nginx", cmd, workdir)
    peer.start(port, f"/{PACKAGE}")
    return peer


def ensure_verdaccio(peers_dir: Path) -> Path:
    """Verdaccio installed once with npm (the machine's ordinary npm configuration)."""
    home = peers_dir / "verdaccio"
    script = home / "node_modules" / "verdaccio" / "bin" / "verdaccio"
    stamp = home / "graft-bench-package.json"
    wanted = json.dumps(VERDACCIO_PACKAGE_JSON, sort_keys=True)
    if script.exists() and stamp.exists() and stamp.read_text() == wanted:
        return script
    print(f"   installing {VERDACCIO} into {home}", file=sys.stderr, flush=True)
    home.mkdir(parents=True, exist_ok=True)
    (home / "package.json").write_text(json.dumps(VERDACCIO_PACKAGE_JSON))
    done = subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=home,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if done.returncode != 0 or not script.exists():
        tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-5:])
        raise PeerUnavailable(f"npm install {VERDACCIO} failed ({done.returncode}): {tail}")
    stamp.write_text(wanted)
    return script


def start_verdaccio(workdir: Path, data: Dataset, peers_dir: Path) -> Peer:
    script = ensure_verdaccio(peers_dir)
    node = shutil.which("node")
    if node is None:
        raise PeerUnavailable("node not found")
    port = free_port()
    storage = workdir / "verdaccio-storage"
    for name in data.docs:
        folder = storage / name
        folder.mkdir(parents=True)
        doc = packument(data, name, f"http://{HOST}:{port}/{name}/-/")
        doc["_rev"] = "1-0000000000000001"
        doc["_uplinks"], doc["_distfiles"] = {}, {}
        doc["_attachments"] = {}
        for version, vdoc in doc["versions"].items():
            filename = f"{name}-{version}.tgz"
            (folder / filename).write_bytes(data.tarballs[filename])
            doc["_attachments"][filename] = {"shasum": vdoc["dist"]["shasum"], "version": version}
        (folder / "package.json").write_text(json.dumps(doc))
    config = workdir / "verdaccio.yaml"
    config.write_text(
        f"""storage: {storage}
auth:
  htpasswd:
    file: {workdir / "verdaccio-htpasswd"}
    max_users: -1
uplinks: {{}}
packages:
  '**':
    access: $all
    publish: $authenticated
web:
  enable: false
server:
  keepAliveTimeout: 60
log: {{ type: stdout, format: json, level: error }}
"""
    )
    cmd = [node, str(script), "--config", str(config), "--listen", f"{HOST}:{port}"]
    peer = Peer("verdaccio", cmd, workdir, env={**os.environ, "NODE_ENV": "production"})
    peer.start(port, f"/{PACKAGE}")
    return peer


# -- targets and checks ----------------------------------------------------------------------
@dataclass
class Target:
    name: str
    meter: GraftServer | Peer
    packument_url: str
    tarball_url: str
    headers: dict[str, str] = field(default_factory=dict)
    is_graft: bool = False
    packument_bytes: int = 0
    blob_server: bool = False  # the tarball answers 302 to the zero-copy blob server


def check(client: httpx.Client, t: Target, data: Dataset) -> None:
    got = client.get(t.packument_url, headers=t.headers | {"Accept": NPM_ACCEPT})
    if got.status_code != 200:
        raise BenchError(f"{t.name}: GET {t.packument_url} answered {got.status_code}")
    doc = got.json()
    if len(doc.get("versions", {})) != VERSIONS:
        raise BenchError(f"{t.name}: the packument lists {len(doc.get('versions', {}))} versions")
    tarball = doc["versions"]["1.0.0"]["dist"]["tarball"]
    if not tarball.startswith(t.packument_url.rsplit("/", 1)[0]):
        raise BenchError(f"{t.name}: tarball URL {tarball} is not on the server itself")
    t.packument_bytes = len(got.content)
    filename = f"{BIG}-1.0.0.tgz"
    digest = hashlib.sha512()
    with client.stream("GET", t.tarball_url, headers=t.headers) as r:
        if r.status_code != 200:
            raise BenchError(f"{t.name}: GET {t.tarball_url} answered {r.status_code}")
        for chunk in r.iter_bytes(1 << 20):
            digest.update(chunk)
    if digest.hexdigest() != data.sha512(filename):
        raise BenchError(f"{t.name}: the 64 MiB tarball came back different")


@dataclass
class Cell:
    target: str
    test: str
    runs: list[WrkResult]
    upstream_requests: list[int] = field(default_factory=list)

    @property
    def rps(self) -> float:
        return statistics.fmean(r.requests_per_second for r in self.runs)

    @property
    def p99(self) -> float:
        return statistics.fmean(r.p99_ms for r in self.runs)

    @property
    def p50(self) -> float:
        return statistics.fmean(r.p50_ms for r in self.runs)

    @property
    def mb_per_s(self) -> float:
        return statistics.fmean((r.transfer_bytes_per_second or 0) / (1 << 20) for r in self.runs)

    def cpu_us(self) -> float | None:
        values = [r.server_cpu_us_per_request for r in self.runs]
        return None if None in values else statistics.fmean(v for v in values if v is not None)

    def other(self) -> float | None:
        values = [r.other_cpu_cores for r in self.runs if r.other_cpu_cores is not None]
        return max(values) if values else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "test": self.test,
            "rps_mean": round(self.rps, 1),
            "p50_ms_mean": round(self.p50, 3),
            "p99_ms_mean": round(self.p99, 3),
            "mb_per_s_mean": round(self.mb_per_s, 1),
            "server_cpu_us_per_request_mean": self.cpu_us(),
            "other_cpu_cores_max": self.other(),
            "upstream_requests": self.upstream_requests,
            "runs": [r.as_dict() for r in self.runs],
        }


def measure(
    targets: list[Target], test: str, args: argparse.Namespace, nginx_log: AccessLog
) -> list[Cell]:
    cells = {t.name: Cell(t.name, test, []) for t in targets}
    for round_no in range(0, args.rounds + 1):  # round 0: warm-up, not counted
        order = targets if round_no % 2 else list(reversed(targets))
        for t in order:
            if test == "packument":
                url, headers, conns = t.packument_url, t.headers | {"Accept": NPM_ACCEPT}, 64
                extra: tuple[str, ...] = ()
            else:
                url, headers, conns = t.tarball_url, dict(t.headers), args.file_connections
                extra = ("--timeout", "30s")
            nginx_log.mark()
            duration = args.warmup if round_no == 0 else args.duration
            result = run_wrk(
                url,
                threads=args.threads,
                connections=args.connections if test == "packument" else conns,
                duration=duration,
                headers=headers,
                server=t.meter,
                extra_args=extra,
            )
            upstream = len(nginx_log.since_mark()) if t.is_graft else 0
            if result.non_2xx_3xx and t.is_graft:
                raise BenchError(f"{t.name}: {result.non_2xx_3xx} non-2xx/3xx answers on {url}")
            if round_no == 0:
                continue
            cells[t.name].runs.append(result)
            if t.is_graft:
                cells[t.name].upstream_requests.append(upstream)
            figure = (
                f"{result.requests_per_second:>9.1f} req/s  p99 {result.p99_ms:.2f} ms"
                if test == "packument"
                else f"{(result.transfer_bytes_per_second or 0) / (1 << 20):>8.1f} MB/s"
            )
            other = result.other_cpu_cores
            print(
                f"   {test} round {round_no} {t.name:<20} {figure}  server CPU "
                f"{result.server_cpu_us_per_request} µs/req  other load {other} cores"
                + (f"  upstream requests {upstream}" if t.is_graft else ""),
                file=sys.stderr,
                flush=True,
            )
            if (other or 0) > QUIET_CORES:
                print("   warning: the machine is busy: figures are noisy", file=sys.stderr)
            time.sleep(1.0)
    return list(cells.values())


def markdown(
    packuments: list[Cell],
    tarballs: list[Cell],
    targets: dict[str, Target],
    args: argparse.Namespace,
) -> str:
    out = [
        f"Packument: `wrk -t{args.threads} -c{args.connections} -d{args.duration} --latency` on "
        f"`{PACKAGE}` ({VERSIONS} versions), npm's install Accept header (abbreviated form), "
        f"mean of {args.rounds} alternating rounds.",
        "",
        "| server | req/s | runs | p50 ms | p99 ms | server CPU µs/req | body | max other load |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for c in packuments:
        runs = " / ".join(f"{r.requests_per_second:.0f}" for r in c.runs)
        cpu = c.cpu_us()
        other = c.other()
        out.append(
            f"| {c.target} | {c.rps:.0f} | {runs} | {c.p50:.2f} | {c.p99:.2f} | "
            f"{'' if cpu is None else f'{cpu:.0f}'} | {targets[c.target].packument_bytes} B | "
            f"{'' if other is None else f'{other:.2f}'} |"
        )
    out += [
        "",
        f"Tarball: `wrk -t{args.threads} -c{args.file_connections} -d{args.duration}` on the "
        "64 MiB tarball.",
        "",
        "| server | MB/s | runs | upstream requests during runs | max other load |",
        "|---|---:|---|---|---:|",
    ]
    for c in tarballs:
        runs = " / ".join(f"{(r.transfer_bytes_per_second or 0) / (1 << 20):.0f}" for r in c.runs)
        other = c.other()
        out.append(
            f"| {c.target} | {c.mb_per_s:.0f} | {runs} | {c.upstream_requests or ''} | "
            f"{'' if other is None else f'{other:.2f}'} |"
        )
    verdaccio = next((c for c in packuments if c.target == "verdaccio"), None)
    nginx = next((c for c in tarballs if c.target == "nginx"), None)
    out.append("")
    for c in packuments:
        if c.target.startswith("graft") and verdaccio:
            ratio = c.rps / verdaccio.rps
            ok = ratio >= 10 and c.p99 <= 20
            out.append(
                f"- {c.target}: packuments {ratio:.1f}x Verdaccio, p99 {c.p99:.1f} ms "
                f"(target >= 10x, <= 20 ms): {'met' if ok else 'NOT met'}"
            )
    for c in tarballs:
        if c.target.startswith("graft") and nginx:
            ratio = c.mb_per_s / nginx.mb_per_s
            out.append(
                f"- {c.target}: tarball {ratio:.2f}x nginx (target >= 0.9x): "
                f"{'met' if ratio >= 0.9 else 'NOT met'}"
            )
    return "\n".join(out)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--workers", type=int, nargs="+", default=[2])
    p.add_argument("--duration", default="10s")
    p.add_argument("--warmup", default="3s")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--file-connections", type=int, default=4)
    p.add_argument("--big-mib", type=int, default=64)
    p.add_argument(
        "--tests", nargs="+", default=["packument", "tarball"], choices=["packument", "tarball"]
    )
    p.add_argument("--peers-dir", type=Path, default=Path.home() / ".cache" / "graft-bench")
    p.add_argument("--no-verdaccio", action="store_true")
    p.add_argument(
        "--blob-server",
        choices=("off", "on", "both"),
        default="both",
        help="run Graft without and/or with --blob-port (the zero-copy blob server)",
    )
    p.add_argument("--no-json", action="store_true")
    return p.parse_args(argv)


def run(args: argparse.Namespace, stack: contextlib.ExitStack) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="graft-bench-npm-"))
    stack.callback(shutil.rmtree, workdir, True)
    workdir.chmod(0o755)
    print(f"== building the data set in {workdir}", file=sys.stderr, flush=True)
    data = build_dataset(workdir / "tree", args.big_mib << 20)
    print("== starting nginx, Verdaccio and Graft", file=sys.stderr, flush=True)
    nginx = start_nginx(workdir, data)
    stack.callback(nginx.stop)
    targets = []
    big = f"{BIG}-1.0.0.tgz"
    skipped = {}
    modes = {"off": [False], "on": [True], "both": [False, True]}[args.blob_server]
    for workers in args.workers:
        for blob_server in modes:
            upstream = [{"ecosystem": "npm", "name": "up", "url": f"{nginx.base_url}/"}]
            settings = {"upstream": json.dumps(upstream), "access_log": "true"}
            if blob_server:
                settings |= {"blob_server_port": str(free_port()), "blob_url_ttl_seconds": "3600"}
            srv = stack.enter_context(
                GraftServer(server="granian", workers=workers, settings=settings)
            )
            token = make_read_token(srv)
            name = f"graft ({workers} worker{'s' if workers > 1 else ''}"
            targets.append(
                Target(
                    name + (", blob server)" if blob_server else ")"),
                    srv,
                    f"{srv.base_url}/npm/{PACKAGE}",
                    f"{srv.base_url}/npm/{BIG}/-/{big}",
                    {"Authorization": f"Bearer {token}"},
                    is_graft=True,
                    blob_server=blob_server,
                )
            )
    if not args.no_verdaccio:
        try:
            v = start_verdaccio(workdir, data, args.peers_dir)
            stack.callback(v.stop)
            targets.append(
                Target("verdaccio", v, f"{v.base_url}/{PACKAGE}", f"{v.base_url}/{BIG}/-/{big}")
            )
        except (PeerUnavailable, OSError, subprocess.SubprocessError, httpx.HTTPError) as exc:
            print(f"   verdaccio skipped: {exc}", file=sys.stderr)
            skipped["verdaccio"] = str(exc)
    nginx_target = Target(
        "nginx", nginx, f"{nginx.base_url}/{PACKAGE}", f"{nginx.base_url}/tarballs/{big}"
    )
    print("== checking answers and warming caches", file=sys.stderr, flush=True)
    with httpx.Client(timeout=120.0, follow_redirects=True) as client:
        for t in [*targets, nginx_target]:
            if t is not nginx_target:
                check(client, t, data)
                check(client, t, data)  # the second time from the cache
            if t.blob_server:  # npm follows the 302; wrk does not, so it gets the signed URL
                hop = client.get(t.tarball_url, headers=t.headers, follow_redirects=False)
                if hop.status_code != 302:
                    raise BenchError(f"{t.name}: expected a 302, got {hop.status_code}")
                t.tarball_url = hop.headers["location"]
    nginx_log = AccessLog(workdir / "nginx-access.log")
    packuments: list[Cell] = []
    tarballs: list[Cell] = []
    if "packument" in args.tests:
        print("== packument", file=sys.stderr, flush=True)
        packuments = measure(targets, "packument", args, nginx_log)
    if "tarball" in args.tests:
        print("== 64 MiB tarball", file=sys.stderr, flush=True)
        tarballs = measure(
            [t for t in targets if t.name != "verdaccio"]
            + [nginx_target]
            + [t for t in targets if t.name == "verdaccio"],
            "tarball",
            args,
            nginx_log,
        )
    all_targets = {t.name: t for t in [*targets, nginx_target]}
    return {
        "machine": machine_info(),
        "skipped": skipped,
        "packuments": packuments,
        "tarballs": tarballs,
        "targets": all_targets,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with cleanup_on_interrupt(), contextlib.ExitStack() as stack:
        try:
            out = run(args, stack)
        except BenchError as exc:
            print(f"\nbenchmark failed: {exc}", file=sys.stderr)
            return 2
    table = markdown(out["packuments"], out["tarballs"], out["targets"], args)
    print(table)
    if not args.no_json:
        path = write_json(
            "npm",
            {
                "benchmark": "npm",
                "machine": out["machine"],
                "params": {
                    k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                },
                "skipped": out["skipped"],
                "packuments": [c.as_dict() for c in out["packuments"]],
                "tarballs": [c.as_dict() for c in out["tarballs"]],
                "markdown": table,
            },
        )
        print(f"\nJSON: {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
