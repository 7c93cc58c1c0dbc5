"""Scale-out benchmark (issue 9): the same download workload through 1 and 2 Graft replicas
sharing PostgreSQL and an S3-compatible store, and a presigned redirect vs streaming.

- Object store: moto's standalone server (`moto[server]`, the test extra) on loopback; a
  fresh PostgreSQL database next to `GRAFT_BENCH_PG_URL` (default the test one), dropped at
  the end. Keys made once (`graft key init`), schema by `graft migrate`.
- Replicas: `graft serve --workers 1` each (granian, access log on), blob_store=s3.
- Load balancer: nginx (worker_processes 1, keepalive to the replicas), the same in front of
  1 and of 2 replicas, so only the replica count changes.
- Replicas: `wrk -t2 -c64 -d10s --latency` through nginx on (a) a project page
  `/pypi/simple/<p>/` and (b) a 16 KiB private wheel (both from memory once warm: no object
  store request), rounds alternating 1 and 2 replicas.
- Redirect vs stream, on one replica directly: a 1 MiB wheel, `wrk -t2 -c8`: with
  `s3_presign=false` Graft streams it from the store; with `s3_presign=true` it answers a 302
  to a presigned URL (wrk does not follow it: this is Graft's cost of a redirected download);
  then wrk on that presigned URL against the store (the client's second leg; moto's speed,
  not a real object store's).

Run by hand on a quiet machine, under the exclusive lock:

    flock -x /tmp/graft-quiet.lock .venv/bin/python bench/replicas.py

The machine has 2 cores shared by wrk, nginx, the replicas, PostgreSQL and moto: two replicas
cannot double throughput here; the figure says how much a second replica adds on the same
cores, and the CPU per request shows that replicas add no per-request cost.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
import zipfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    HOST,
    BenchError,
    GraftServer,
    WrkResult,
    cleanup_on_interrupt,
    free_port,
    graft_executable,
    machine_info,
    make_read_token,
    run_wrk,
    write_json,
)

PG_URL = os.environ.get("GRAFT_BENCH_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")


def make_wheel(dest: Path, name: str, size: int, seed: int) -> Path:
    """A valid pure-Python wheel carrying `size` incompressible bytes."""
    module = name.replace("-", "_")
    dist = f"{module}-1.0.dist-info"
    path = dest / f"{module}-1.0-py3-none-any.whl"
    noise = base64.b64encode(random.Random(seed).randbytes(size * 3 // 4)).decode()
    files = {
        f"{module}/__init__.py": "",
        f"{module}/blob.txt": noise,
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: bench\nRoot-Is-Purelib: true\nTag: "
        "py3-none-any\n",
    }
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for arc, text in files.items():
            zf.writestr(arc, text)
        zf.writestr(f"{dist}/RECORD", "".join(f"{arc},,\n" for arc in files))
    return path


async def _pg(statement: str) -> None:
    import asyncpg

    dsn = PG_URL.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@contextmanager
def pg_database() -> Iterator[str]:
    name = f"graft_bench_{uuid.uuid4().hex[:10]}"
    asyncio.run(_pg(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{PG_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        asyncio.run(_pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextmanager
def moto_server(workdir: Path) -> Iterator[str]:
    port = free_port()
    log = (workdir / "moto.log").open("wb")
    exe = Path(sys.executable).with_name("moto_server")
    if not exe.exists():
        raise BenchError("moto_server missing: pip install 'moto[server]' (the test extra)")
    proc = subprocess.Popen(
        [str(exe), "-H", HOST, "-p", str(port)], stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    url = f"http://{HOST}:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/moto-api/", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise BenchError("moto_server did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


class Nginx:
    """nginx on a free port, balancing over the given replica ports (round robin)."""

    def __init__(self, workdir: Path, ports: list[int]) -> None:
        exe = shutil.which("nginx") or "/usr/sbin/nginx"
        if not Path(exe).exists():
            raise BenchError("nginx not found (apt-get install -y nginx-light)")
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="graft-bench-lb-", dir=workdir))
        servers = "".join(f"    server {HOST}:{p};\n" for p in ports)
        temps = "".join(
            f"  {kind}_temp_path {self.dir / kind};\n"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        conf = self.dir / "nginx.conf"
        conf.write_text(
            f"worker_processes 1;\npid {self.dir / 'nginx.pid'};\n"
            f"error_log {self.dir / 'error.log'} warn;\n"
            "events { worker_connections 1024; }\n"
            "http {\n  access_log off;\n" + temps + "  upstream graft {\n" + servers
            + "    keepalive 64;\n  }\n"
            f"  server {{\n    listen {HOST}:{self.port};\n    location / {{\n"
            "      proxy_pass http://graft;\n      proxy_http_version 1.1;\n"
            '      proxy_set_header Connection "";\n      proxy_set_header Host $http_host;\n'
            "      proxy_buffering off;\n    }\n  }\n}\n"
        )  # fmt: skip
        self.proc = subprocess.Popen(
            [exe, "-c", str(conf), "-g", "daemon off;"], start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=(self.dir / "stderr.log").open("wb"),
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while True:
            try:
                httpx.get(f"http://{HOST}:{self.port}/healthz", timeout=1)
                return
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise BenchError("nginx did not start") from None
                time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def cpu_seconds(self) -> float:
        return 0.0

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class Replicas:
    """CpuMeter over several servers (sum of their CPU)."""

    def __init__(self, servers: list[GraftServer]) -> None:
        self.servers = servers

    def cpu_seconds(self) -> float:
        return sum(s.cpu_seconds() for s in self.servers)


def row(label: str, r: WrkResult) -> dict[str, Any]:
    return {
        "case": label,
        "req_s": round(r.requests_per_second),
        "p50_ms": r.p50_ms,
        "p99_ms": r.p99_ms,
        "cpu_us_per_req": r.server_cpu_us_per_request,
        "mb_s": round((r.transfer_bytes_per_second or 0) / (1 << 20), 1),
        "steal_%": r.cpu_steal_percent,
        "other_cores": r.other_cpu_cores,
    }


def mean(results: list[WrkResult]) -> WrkResult:
    first = results[0]
    n = len(results)

    def avg(attr: str) -> Any:
        values = [getattr(r, attr) for r in results if getattr(r, attr) is not None]
        return round(sum(values) / len(values), 2) if values else None

    return WrkResult(
        url=first.url,
        requests_per_second=sum(r.requests_per_second for r in results) / n,
        requests=sum(r.requests for r in results),
        seconds=sum(r.seconds for r in results),
        p50_ms=avg("p50_ms"),
        p99_ms=avg("p99_ms"),
        server_cpu_us_per_request=avg("server_cpu_us_per_request"),
        cpu_steal_percent=avg("cpu_steal_percent"),
        other_cpu_cores=avg("other_cpu_cores"),
        transfer_bytes_per_second=avg("transfer_bytes_per_second"),
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", default="10s")
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--no-json", action="store_true")
    args = ap.parse_args()
    info = machine_info()
    results: dict[str, Any] = {"machine": info, "replicas": [], "redirect": []}
    work = Path(tempfile.mkdtemp(prefix="graft-bench-replicas-"))
    try:
        with ExitStack() as stack:
            s3 = stack.enter_context(moto_server(work))
            from botocore.session import get_session

            bucket = f"graft-bench-{uuid.uuid4().hex[:8]}"
            creds = {"aws_access_key_id": "bench", "aws_secret_access_key": "bench"}
            get_session().create_client(
                "s3", endpoint_url=s3, region_name="us-east-1", **creds
            ).create_bucket(Bucket=bucket)
            db = stack.enter_context(pg_database())
            settings = {
                "database_url": db,
                "blob_store": "s3",
                "s3_bucket": bucket,
                "s3_endpoint_url": s3,
                "s3_region": "us-east-1",
                "s3_access_key_id": "bench",
                "s3_secret_access_key": "bench",
                "s3_addressing_style": "path",
                "keys_path": str(work / "keys"),
                "migrate_on_start": "false",
                "auth_failure_limit": "100000",
            }
            env = {k: v for k, v in os.environ.items() if not k.startswith("GRAFT_")}
            env.update({f"GRAFT_{k.upper()}": v for k, v in settings.items()})
            env["GRAFT_DATA_DIR"] = str(work / "admin")
            env["GRAFT_CONFIG"] = str(work / "absent.toml")
            for cmd in (["key", "init"], ["migrate"]):
                subprocess.run([graft_executable(), *cmd], env=env, check=True,
                               capture_output=True)  # fmt: skip
            a = stack.enter_context(GraftServer(server="granian", workers=1, settings=settings))
            b = stack.enter_context(GraftServer(server="granian", workers=1, settings=settings))
            token = make_read_token(a)
            publish = a.cli("token", "create", "--org", "demo", "--account", "admin",
                            "--scope", "publish", "--json")  # fmt: skip
            publish_token = json.loads(publish)["token"]
            small = make_wheel(work, "bench-small", 16 << 10, 1)
            big = make_wheel(work, "bench-big", 1 << 20, 2)
            for wheel in (small, big):
                a.cli("publish", "pypi", str(wheel), "--url", a.base_url, "--token",
                      publish_token, "--private")  # fmt: skip
            auth = {"Authorization": "Basic " + base64.b64encode(f"x:{token}".encode()).decode()}
            paths = {
                "page": "/pypi/simple/bench-small/",
                "small file": f"/pypi/files/bench-small/{small.name}",
            }
            lbs = {1: Nginx(work, [a.port]), 2: Nginx(work, [a.port, b.port])}
            try:
                for lb in lbs.values():  # warm every replica's caches through each balancer
                    for path in paths.values():
                        for _ in range(4):
                            r = httpx.get(lb.url + path, headers=auth)
                            if r.status_code != 200:
                                raise BenchError(f"{path}: {r.status_code} {r.text[:200]}")
                for name, path in paths.items():
                    runs: dict[int, list[WrkResult]] = {1: [], 2: []}
                    for _ in range(args.rounds):
                        for n, lb in lbs.items():
                            meter = Replicas([a] if n == 1 else [a, b])
                            runs[n].append(run_wrk(
                                lb.url + path, threads=2, connections=args.connections,
                                duration=args.duration, headers=auth, server=meter,
                            ))  # fmt: skip
                    for n in (1, 2):
                        results["replicas"].append(
                            row(f"{name}, {n} replica{'s' if n > 1 else ''}", mean(runs[n]))
                        )
            finally:
                for lb in lbs.values():
                    lb.stop()
            # -- a presigned redirect vs streaming through Graft, one replica, 1 MiB --------
            presign = {**settings, "s3_presign": "true", "blob_redirect_min_bytes": "65536"}
            redirecting = stack.enter_context(
                GraftServer(server="granian", workers=1, settings=presign)
            )
            big_path = f"/pypi/files/bench-big/{big.name}"
            hop = httpx.get(redirecting.base_url + big_path, headers=auth)
            if hop.status_code != 302:
                raise BenchError(f"expected a redirect, got {hop.status_code}")
            presigned = hop.headers["location"]
            check = httpx.get(presigned)
            if check.status_code != 200 or len(check.content) != big.stat().st_size:
                raise BenchError("the presigned URL did not serve the file")
            stream_runs, redirect_runs, store_runs = [], [], []
            for _ in range(args.rounds):
                stream_runs.append(
                    run_wrk(
                        a.base_url + big_path,
                        threads=2,
                        connections=8,
                        duration=args.duration,
                        headers=auth,
                        server=a,
                    )
                )
                redirect_runs.append(
                    run_wrk(
                        redirecting.base_url + big_path,
                        threads=2,
                        connections=8,
                        duration=args.duration,
                        headers=auth,
                        server=redirecting,
                    )
                )
                store_runs.append(run_wrk(presigned, threads=2, connections=8,
                                          duration=args.duration))  # fmt: skip
            results["redirect"] = [
                row("1 MiB streamed through Graft", mean(stream_runs)),
                row("1 MiB: Graft's 302 to a presigned URL", mean(redirect_runs)),
                row("1 MiB: the presigned GET (moto)", mean(store_runs)),
            ]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n{info['date_utc']}, {info['nproc']} cores, {info['cpu_model']}\n")
    for section in ("replicas", "redirect"):
        rows = results[section]
        cols = list(rows[0])
        print("| " + " | ".join(cols) + " |")
        print("|" + "---|" * len(cols))
        for r in rows:
            print("| " + " | ".join(str(r[c]) for c in cols) + " |")
        print()
    rep = {r["case"]: r for r in results["replicas"]}
    for name in ("page", "small file"):
        one, two = rep[f"{name}, 1 replica"], rep[f"{name}, 2 replicas"]
        print(f"{name}: 2 replicas / 1 replica = {two['req_s'] / one['req_s']:.2f}x req/s")
    if not args.no_json:
        print(f"\nJSON: {write_json('replicas', results)}")


if __name__ == "__main__":
    with cleanup_on_interrupt():
        main()
