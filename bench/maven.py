"""Maven repository benchmark (issue 6): Graft against nginx serving the same static tree.

The script builds a static Maven repository in a temp dir: `com.example:bench-lib` with 40
versions (jar, POM, .sha1, .md5 each) and its maven-metadata.xml, and `com.example:bench-big`
1.0 whose jar holds 64 MiB of random bytes (stored, not compressed). nginx serves the tree and
is Graft's upstream; Graft also gets one patched build of bench-lib deployed by PUT, so the
metadata it serves is a real merge (upstream versions + the patched one).

Measured, with every server warm, alternating Graft and nginx round by round:
1. metadata: `wrk -t2 -c64 -d10s --latency` on bench-lib's maven-metadata.xml (GETs/s, p99);
2. jar: `wrk -t2 -c4 -d10s` on the 64 MiB jar (MB/s = wrk's Transfer/sec); each server's copy
   is downloaded and sha256-checked first.
During Graft's runs nginx's access log must show no request: the cached path is measured.
Graft runs without and with its zero-copy blob server (`--blob-port`); with it the jar answers
302 to a signed URL, which is what wrk (following no redirect) measures.

    .venv/bin/python bench/maven.py                  # Graft with 2 workers
    .venv/bin/python bench/maven.py --workers 2 1

Target: jar throughput >= 0.9x nginx; metadata rates are reported. Not a test: run it by hand
on a quiet machine (flock -x /tmp/graft-quiet.lock on the shared development box).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import zipfile
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
from pypi import QUIET_CORES, AccessLog, Peer, PeerUnavailable, wait_for_quiet

GROUP_PATH = "com/example"
LIB, BIG = "bench-lib", "bench-big"
VERSIONS = [f"{1 + i // 10}.{i % 10}.0" for i in range(40)]
PATCHED = "1.9.0-graft.1"
USER = "mvn"  # any user name; the token is the password


# -- the data set ---------------------------------------------------------------------------
def _jar(payload: bytes) -> bytes:
    path = Path(tempfile.mkstemp(suffix=".jar")[1])
    try:
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as z:
            z.writestr(zipfile.ZipInfo("META-INF/MANIFEST.MF"), "Manifest-Version: 1.0\r\n\r\n")
            z.writestr(zipfile.ZipInfo("blob.bin"), payload)
        return path.read_bytes()
    finally:
        path.unlink()


def _pom(artifact: str, version: str) -> bytes:
    return (
        '<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>'
        f"<groupId>com.example</groupId><artifactId>{artifact}</artifactId>"
        f"<version>{version}</version></project>\n"
    ).encode()


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    for algorithm in ("sha1", "md5"):
        path.with_name(f"{path.name}.{algorithm}").write_text(
            hashlib.new(algorithm, data).hexdigest()
        )


def build_tree(root: Path, big_bytes: int) -> dict[str, str]:
    """The static repository; returns path -> sha256 of the files the benchmark checks."""
    for version in VERSIONS:
        d = root / GROUP_PATH / LIB / version
        _write(d / f"{LIB}-{version}.jar", _jar(f"bench-lib {version}".encode()))
        _write(d / f"{LIB}-{version}.pom", _pom(LIB, version))
    versions = "".join(f"<version>{v}</version>" for v in VERSIONS)
    meta = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<metadata><groupId>com.example</groupId>'
        f"<artifactId>{LIB}</artifactId><versioning><latest>{VERSIONS[-1]}</latest>"
        f"<release>{VERSIONS[-1]}</release><versions>{versions}</versions>"
        "<lastUpdated>20260101000000</lastUpdated></versioning></metadata>\n"
    ).encode()
    _write(root / GROUP_PATH / LIB / "maven-metadata.xml", meta)
    big = root / GROUP_PATH / BIG / "1.0" / f"{BIG}-1.0.jar"
    _write(big, _jar(os.urandom(big_bytes)))
    _write(big.with_name(f"{BIG}-1.0.pom"), _pom(BIG, "1.0"))
    return {big.relative_to(root).as_posix(): hashlib.sha256(big.read_bytes()).hexdigest()}


def start_nginx(workdir: Path, root: Path) -> Peer:
    exe = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else "")
    if not exe:
        raise PeerUnavailable("nginx not found (Debian/Ubuntu: apt-get install -y nginx-light)")
    port = free_port()
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
    types {{ application/xml xml pom; application/java-archive jar; text/plain sha1 md5; }}
    default_type application/octet-stream;
    log_format bench '$remote_addr "$request" $status $body_bytes_sent';
    access_log {workdir / "nginx-access.log"} bench;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
{temp}    server {{
        listen {HOST}:{port};
        root {root};
    }}
}}
"""
    )
    cmd = [exe, "-c", str(conf), "-p", str(workdir), "-e", str(workdir / "nginx-error.log")]
    peer = Peer("nginx", cmd, workdir)
    peer.start(port, f"/{GROUP_PATH}/{LIB}/maven-metadata.xml")
    return peer


# -- targets ----------------------------------------------------------------------------------
@dataclass
class Target:
    name: str
    meter: Any  # GraftServer or Peer: has cpu_seconds()
    base: str  # repository root URL, ending in /
    headers: dict[str, str] = field(default_factory=dict)
    # Graft with the blob server: the signed URL the jar redirects to (wrk follows no
    # redirect, so it measures that; Maven follows the 302 itself)
    direct_url: str | None = None

    @property
    def metadata_url(self) -> str:
        return f"{self.base}{GROUP_PATH}/{LIB}/maven-metadata.xml"

    @property
    def jar_url(self) -> str:
        return f"{self.base}{GROUP_PATH}/{BIG}/1.0/{BIG}-1.0.jar"

    @property
    def is_graft(self) -> bool:
        return isinstance(self.meter, GraftServer)


def publish_token(srv: GraftServer) -> str:
    out = srv.cli(
        "token", "create", "--org", "demo", "--account", "admin", "--scope", "publish", "--json"
    )
    return str(json.loads(out)["token"])


def graft_target(srv: GraftServer, admin_token: str, blob_server: bool) -> Target:
    token = make_read_token(srv)
    basic = base64.b64encode(f"{USER}:{token}".encode()).decode()
    name = f"graft ({srv.workers} worker{'s' if srv.workers > 1 else ''}"
    target = Target(
        name + (", blob server)" if blob_server else ")"),
        srv,
        f"{srv.base_url}/maven/",
        {"Authorization": f"Basic {basic}"},
    )
    # one patched build, so that the metadata is a merge, deployed as mvn deploy does
    directory = f"{target.base}{GROUP_PATH}/{LIB}/{PATCHED}/{LIB}-{PATCHED}"
    with httpx.Client(auth=(USER, admin_token), timeout=60) as client:
        for suffix, data in ((".pom", _pom(LIB, PATCHED)), (".jar", _jar(b"patched"))):
            r = client.put(
                directory + suffix, content=data, headers={"X-Graft-Fixes": "CVE-2026-0001"}
            )
            if r.status_code != 201:
                raise BenchError(
                    f"deploying {directory}{suffix} answered {r.status_code}: {r.text}"
                )
    return target


def check(client: httpx.Client, target: Target, sha256: dict[str, str]) -> dict[str, Any]:
    meta = client.get(target.metadata_url, headers=target.headers)
    if meta.status_code != 200 or b"<version>4.9.0</version>" not in meta.content:
        raise BenchError(f"{target.name}: {target.metadata_url} answered {meta.status_code}")
    if target.is_graft and f"<release>{VERSIONS[-1]}</release>".encode() not in meta.content:
        raise BenchError(f"{target.name}: unexpected metadata: {meta.text[:300]}")
    digest, size = hashlib.sha256(), 0
    with client.stream("GET", target.jar_url, headers=target.headers) as r:
        if r.status_code != 200:
            raise BenchError(f"{target.name}: GET {target.jar_url} answered {r.status_code}")
        for chunk in r.iter_bytes(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    if digest.hexdigest() != next(iter(sha256.values())):
        raise BenchError(f"{target.name}: the 64 MiB jar came back different ({size} bytes)")
    return {"metadata_bytes": len(meta.content), "jar_bytes": size}


# -- measuring -------------------------------------------------------------------------------
@dataclass
class Cell:
    target: str
    test: str
    runs: list[WrkResult] = field(default_factory=list)
    upstream_requests: list[int] = field(default_factory=list)

    def mean(self, attr: str) -> float:
        return statistics.fmean(getattr(r, attr) or 0 for r in self.runs)

    @property
    def mb_per_s(self) -> float:
        return self.mean("transfer_bytes_per_second") / (1 << 20)

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "test": self.test,
            "rps_mean": round(self.mean("requests_per_second"), 1),
            "p99_ms_mean": round(self.mean("p99_ms"), 3),
            "mb_per_s_mean": round(self.mb_per_s, 1),
            "upstream_requests": self.upstream_requests,
            "runs": [r.as_dict() for r in self.runs],
        }


def measure(
    targets: list[Target], test: str, args: argparse.Namespace, log: AccessLog
) -> list[Cell]:
    cells = {t.name: Cell(t.name, test) for t in targets}

    def once(t: Target, duration: str) -> WrkResult:
        url = t.metadata_url if test == "metadata" else (t.direct_url or t.jar_url)
        connections = args.connections if test == "metadata" else args.file_connections
        extra = ("--timeout", "30s") if test == "jar" else ()
        result = run_wrk(
            url,
            threads=args.threads,
            connections=connections,
            duration=duration,
            headers=t.headers,
            server=t.meter,
            extra_args=extra,
        )
        if result.non_2xx_3xx:
            raise BenchError(f"{t.name}: {result.non_2xx_3xx} non-2xx/3xx answers on {url}")
        time.sleep(1.0)
        return result

    for t in targets:
        once(t, args.warmup)
    for round_no in range(1, args.rounds + 1):
        for t in targets if round_no % 2 else list(reversed(targets)):
            log.mark()
            result = once(t, args.duration)
            went_up = len(log.since_mark()) if t.is_graft else 0
            cells[t.name].runs.append(result)
            if t.is_graft:
                cells[t.name].upstream_requests.append(went_up)
                if went_up:
                    raise BenchError(f"{t.name} sent {went_up} requests upstream during a run")
            if test == "metadata":
                figure = f"{result.requests_per_second:>9.1f} req/s  p99 {result.p99_ms:.2f} ms"
            else:
                mb = (result.transfer_bytes_per_second or 0) / (1 << 20)
                figure = f"{mb:>8.1f} MB/s"
            other = result.other_cpu_cores
            print(
                f"   {test} round {round_no} {t.name:<18} {figure}  server CPU "
                f"{result.server_cpu_us_per_request} µs/req  steal {result.cpu_steal_percent} %  "
                f"other load {other} cores",
                file=sys.stderr,
                flush=True,
            )
            if (other or 0) > QUIET_CORES:
                print("   warning: the machine was busy during this run", file=sys.stderr)
    return list(cells.values())


def markdown(metadata: list[Cell], jars: list[Cell]) -> str:
    base_meta = next(c for c in metadata if c.target == "nginx")
    base_jar = next(c for c in jars if c.target == "nginx")
    out = [
        "| server | metadata GETs/s | runs | p99 ms | server CPU µs/GET | ÷ nginx |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for c in metadata:
        runs = " / ".join(f"{r.requests_per_second:.0f}" for r in c.runs)
        ratio = c.mean("requests_per_second") / base_meta.mean("requests_per_second")
        out.append(
            f"| {c.target} | {c.mean('requests_per_second'):.0f} | {runs} | "
            f"{c.mean('p99_ms'):.2f} | {c.mean('server_cpu_us_per_request'):.0f} | {ratio:.2f} |"
        )
    out += [
        "",
        "| server | 64 MiB jar MB/s | runs | ÷ nginx | server CPU ms/file |",
        "|---|---:|---|---:|---:|",
    ]
    for c in jars:
        runs = " / ".join(f"{(r.transfer_bytes_per_second or 0) / (1 << 20):.0f}" for r in c.runs)
        ratio = c.mb_per_s / base_jar.mb_per_s
        cpu_ms = c.mean("server_cpu_us_per_request") / 1000
        out.append(f"| {c.target} | {c.mb_per_s:.0f} | {runs} | {ratio:.2f} | {cpu_ms:.1f} |")
    return "\n".join(out)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--workers", type=int, nargs="+", default=[2])
    p.add_argument(
        "--blob-server",
        choices=("off", "on", "both"),
        default="both",
        help="run Graft without and/or with --blob-port (the zero-copy blob server)",
    )
    p.add_argument("--duration", default="10s")
    p.add_argument("--warmup", default="3s")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--file-connections", type=int, default=4)
    p.add_argument("--big-mib", type=int, default=64)
    p.add_argument("--wait-quiet", type=float, default=60.0)
    p.add_argument("--no-json", action="store_true")
    return p.parse_args(argv)


def run(args: argparse.Namespace, stack: contextlib.ExitStack) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="graft-bench-maven-"))
    stack.callback(shutil.rmtree, workdir, True)
    workdir.chmod(0o755)
    print(f"== building the repository in {workdir}", file=sys.stderr, flush=True)
    sha256 = build_tree(workdir / "tree", args.big_mib << 20)
    nginx = start_nginx(workdir, workdir / "tree")
    stack.callback(nginx.stop)
    targets: list[Target] = []
    upstream = [{"ecosystem": "maven", "name": "up", "url": f"{nginx.base_url}/"}]
    modes = {"off": [False], "on": [True], "both": [False, True]}[args.blob_server]
    for workers in args.workers:
        for blob_server in modes:
            settings = {"upstream": json.dumps(upstream), "access_log": "true"}
            if blob_server:
                settings |= {"blob_server_port": str(free_port()), "blob_url_ttl_seconds": "3600"}
            srv = stack.enter_context(
                GraftServer(server="granian", workers=workers, settings=settings)
            )
            targets.append(graft_target(srv, publish_token(srv), blob_server))
    targets.append(Target("nginx", nginx, f"{nginx.base_url}/"))
    print("== checking and warming", file=sys.stderr, flush=True)
    info: dict[str, Any] = {}
    with httpx.Client(timeout=120.0, follow_redirects=True) as client:
        for t in targets:
            check(client, t, sha256)  # Graft pulls the jar through here
            info[t.name] = check(client, t, sha256)  # and serves its copy here
            hop = client.get(t.jar_url, headers=t.headers, follow_redirects=False)
            if hop.status_code == 302:
                t.direct_url = hop.headers["location"]
                info[t.name]["redirect"] = t.direct_url.split("?", 1)[0]
    log = AccessLog(workdir / "nginx-access.log")
    meta = machine_info()
    meta["other_load_before_cores"] = wait_for_quiet(args.wait_quiet)
    print("== maven-metadata.xml", file=sys.stderr, flush=True)
    metadata = measure(targets, "metadata", args, log)
    print("== 64 MiB jar", file=sys.stderr, flush=True)
    jars = measure(targets, "jar", args, log)
    return {"machine": meta, "info": info, "metadata": metadata, "jars": jars}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with cleanup_on_interrupt(), contextlib.ExitStack() as stack:
        try:
            out = run(args, stack)
        except (BenchError, PeerUnavailable) as exc:
            print(f"\nbenchmark failed: {exc}", file=sys.stderr)
            return 2
    table = markdown(out["metadata"], out["jars"])
    print(table)
    nginx_jar = next(c for c in out["jars"] if c.target == "nginx").mb_per_s
    for c in out["jars"]:
        if c.target != "nginx":
            ratio = c.mb_per_s / nginx_jar
            verdict = "met" if ratio >= 0.9 else "NOT met"
            print(f"\n- {c.target}: jar throughput {ratio:.2f}x nginx (target 0.9x): {verdict}")
    if not args.no_json:
        path = write_json(
            "maven",
            {
                "benchmark": "maven",
                "machine": out["machine"],
                "params": vars(args),
                "checked": out["info"],
                "metadata": [c.as_dict() for c in out["metadata"]],
                "jars": [c.as_dict() for c in out["jars"]],
                "markdown": table,
            },
        )
        print(f"\nJSON: {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
