"""Container registry benchmark (issue 5): Graft side by side with CNCF distribution (Debian's
`docker-registry`) and nginx, on the same image.

- One image: a 64 MiB random layer, a small config, an OCI manifest; pushed to distribution
  (no auth, its default logging) and to Graft (publish token; access log on).
- nginx (worker_processes 2, sendfile) serves the same 64 MiB blob file: the limit.
- blob: `wrk -t2 -c4 -d10s` GET of the layer; MB/s = wrk's Transfer/sec. Graft runs without
  and with its zero-copy blob server (`--blob-server off|on|both`); with it a layer GET answers
  302 to a signed URL, which clients follow (skopeo does in tests/integration/test_oci_skopeo.py)
  and wrk, following no redirect, is pointed at directly.
- manifests: `wrk -t2 -c64 -d10s --latency` GET of the manifest by tag with the Accept header
  docker sends; Graft with Basic credentials (read token), distribution without auth.

Servers are measured in turn, the order reversed every round (`--rounds`, default 3), and the
mean reported. Run by hand on a quiet machine, under the exclusive lock:

    flock -x /tmp/graft-quiet.lock .venv/bin/python bench/oci.py --workers 2

Targets: blob >= 1x distribution and >= 0.9x nginx; manifests >= 5x distribution, p99 <= 20 ms.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    HOST,
    BenchError,
    GraftServer,
    WrkResult,
    free_port,
    machine_info,
    make_read_token,
    run_wrk,
    write_json,
)

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
ACCEPT = ", ".join(
    [
        OCI_MANIFEST,
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
)


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def build_image(size: int) -> tuple[bytes, bytes, bytes]:
    layer = os.urandom(size)
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {}}).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": sha256(config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": sha256(layer),
                    "size": len(layer),
                }
            ],
        }
    ).encode()
    return layer, config, manifest


def push(base: str, headers: dict[str, str], blobs: list[bytes], manifest: bytes) -> None:
    with httpx.Client(base_url=base, headers=headers, timeout=120) as c:
        for data in blobs:
            r = c.post("/v2/bench/app/blobs/uploads/")
            if r.status_code != 202:
                raise BenchError(f"{base}: upload start {r.status_code} {r.text}")
            loc = r.headers["location"]
            sep = "&" if "?" in loc else "?"
            r = c.put(f"{loc}{sep}digest={sha256(data)}", content=data)
            if r.status_code != 201:
                raise BenchError(f"{base}: upload {r.status_code} {r.text}")
        r = c.put(
            "/v2/bench/app/manifests/latest",
            content=manifest,
            headers={"Content-Type": OCI_MANIFEST},
        )
        if r.status_code != 201:
            raise BenchError(f"{base}: manifest {r.status_code} {r.text}")


class Proc:
    """A peer server in its own process group; stopped on exit."""

    def __init__(self, name: str, cmd: list[str], log: Path, ready_url: str) -> None:
        self.name = name
        self._log = log.open("ab")
        self.proc = subprocess.Popen(
            cmd, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"{name} exited: {log.read_text()[-2000:]}")
            try:
                httpx.get(ready_url, timeout=1)
                return
            except httpx.TransportError:
                time.sleep(0.1)
        raise BenchError(f"{name} did not start")

    def cpu_seconds(self) -> float:
        from _common import cpu_seconds, process_tree

        return cpu_seconds(process_tree(self.proc.pid))

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()


def nginx(workdir: Path, blob_path: Path) -> tuple[Proc, str]:
    exe = shutil.which("nginx") or "/usr/sbin/nginx"
    port = free_port()
    root = workdir / "www"
    root.mkdir()
    os.link(blob_path, root / "layer")
    user = "user root;\n" if os.geteuid() == 0 else ""
    temp = "".join(
        f"    {k}_temp_path {workdir / ('nginx-' + k)};\n"
        for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    conf = workdir / "nginx.conf"
    conf.write_text(
        f"{user}worker_processes 2;\ndaemon off;\npid {workdir / 'nginx.pid'};\n"
        f"error_log {workdir / 'nginx-error.log'} warn;\nevents {{ worker_connections 1024; }}\n"
        f"http {{\n    default_type application/octet-stream;\n"
        f"    access_log {workdir / 'nginx-access.log'};\n    sendfile on;\n    tcp_nopush on;\n"
        f"    keepalive_requests 1000000;\n{temp}"
        f"    server {{ listen {HOST}:{port}; root {root}; }}\n}}\n"
    )
    proc = Proc("nginx", [exe, "-c", str(conf)], workdir / "nginx.log", f"http://{HOST}:{port}/")
    return proc, f"http://{HOST}:{port}"


def distribution(workdir: Path) -> tuple[Proc, str]:
    exe = shutil.which("docker-registry")
    if exe is None:
        raise BenchError("docker-registry not found (apt-get install -y docker-registry)")
    port = free_port()
    conf = workdir / "registry.yml"
    conf.write_text(
        "version: 0.1\n"
        f"storage:\n  filesystem:\n    rootdirectory: {workdir / 'registry-data'}\n"
        f"http:\n  addr: {HOST}:{port}\n"
    )
    url = f"http://{HOST}:{port}"
    return Proc("distribution", [exe, "serve", str(conf)], workdir / "registry.log", url), url


def measure(
    name: str,
    blob_url: str,
    manifest_url: str,
    meter: object,
    args: argparse.Namespace,
    headers: dict[str, str],
) -> tuple[WrkResult, WrkResult | None]:
    server = meter  # a GraftServer or a Proc: both measure their CPU
    blob = run_wrk(
        blob_url,
        threads=2,
        connections=4,
        duration=args.duration,
        headers=headers,
        server=server,  # type: ignore[arg-type]
    )
    manifest = None
    if manifest_url:
        manifest = run_wrk(
            manifest_url,
            threads=2,
            connections=64,
            duration=args.duration,
            headers={**headers, "Accept": ACCEPT},
            server=server,  # type: ignore[arg-type]
        )
    for r in (blob, manifest):
        if r is not None and r.non_2xx_3xx:
            raise BenchError(f"{name}: {r.non_2xx_3xx} non-2xx answers on {r.url}")
    return blob, manifest


def signed_blob_url(url: str, headers: dict[str, str]) -> str:
    """Where Graft's blob server redirects a layer GET (clients follow it; wrk does not)."""
    r = httpx.get(url, headers=headers, follow_redirects=False, timeout=30)
    if r.status_code != 302:
        raise BenchError(f"expected a 302 to the blob server, got {r.status_code}")
    return str(r.headers["location"])


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--duration", default="10s")
    parser.add_argument("--size-mib", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds, order alternated")
    parser.add_argument(
        "--blob-server",
        choices=("off", "on", "both"),
        default="both",
        help="run Graft without and/or with --blob-port (the zero-copy blob server)",
    )
    args = parser.parse_args()
    layer, config, manifest = build_image(args.size_mib << 20)
    layer_url = f"/v2/bench/app/blobs/{sha256(layer)}"
    manifest_url = "/v2/bench/app/manifests/latest"
    results: dict[str, list[tuple[WrkResult, WrkResult | None]]] = {}
    with tempfile.TemporaryDirectory(prefix="graft-bench-oci-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        blob_file = workdir / "layer.bin"
        blob_file.write_bytes(layer)
        ng, ng_url = nginx(workdir, blob_file)
        stack.callback(ng.stop)
        dist, dist_url = distribution(workdir)
        stack.callback(dist.stop)
        push(dist_url, {}, [config, layer], manifest)
        targets: list[tuple[str, tuple[str, str], object, dict[str, str]]] = [
            ("nginx", (f"{ng_url}/layer", ""), ng, {}),
            ("distribution", (dist_url + layer_url, dist_url + manifest_url), dist, {}),
        ]
        modes = {"off": [False], "on": [True], "both": [False, True]}[args.blob_server]
        for blob_server in modes:
            settings = {"access_log": "true"}
            if blob_server:
                settings |= {"blob_server_port": str(free_port()), "blob_url_ttl_seconds": "3600"}
            graft = stack.enter_context(
                GraftServer(server="granian", workers=args.workers, settings=settings)
            )
            admin = graft.cli(
                "token", "create", "--org", "demo", "--account", "admin", "--scope", "publish",
                "--json",
            )  # fmt: skip
            publish = json.loads(admin)["token"]
            basic = "Basic " + base64.b64encode(f"rootio:{publish}".encode()).decode()
            push(graft.base_url, {"Authorization": basic}, [config, layer], manifest)
            read = make_read_token(graft)
            auth = {"Authorization": "Basic " + base64.b64encode(f"r:{read}".encode()).decode()}
            blob = graft.base_url + layer_url
            if blob_server:
                blob = signed_blob_url(blob, auth)
            name = "graft, blob server" if blob_server else "graft"
            targets.append((name, (blob, graft.base_url + manifest_url), graft, auth))
        for _name, urls, _meter, headers in targets:  # warm up
            run_wrk(urls[0], threads=1, connections=2, duration="2s", headers=headers)
            if urls[1]:
                run_wrk(
                    urls[1],
                    threads=2,
                    connections=64,
                    duration="2s",
                    headers={**headers, "Accept": ACCEPT},
                )
        for round_ in range(args.rounds):
            order = targets if round_ % 2 == 0 else targets[::-1]
            for name, urls, meter, headers in order:
                blob_r, man_r = measure(name, urls[0], urls[1], meter, args, headers)
                results.setdefault(name, []).append((blob_r, man_r))
                mb = (blob_r.transfer_bytes_per_second or 0) / (1 << 20)
                line = f"   round {round_ + 1} {name:20} blob {mb:7.0f} MB/s"
                if man_r is not None:
                    line += f"  manifests {man_r.requests_per_second:8.0f}/s p99 {man_r.p99_ms} ms"
                print(line, file=sys.stderr, flush=True)
    rows: list[dict[str, object]] = []
    for name, runs in results.items():
        blobs = [(b.transfer_bytes_per_second or 0) / (1 << 20) for b, _ in runs]
        mans = [m for _, m in runs if m is not None]
        rows.append(
            {
                "server": name,
                "blob_mb_s": round(_mean(blobs)),
                "blob_runs": [round(b) for b in blobs],
                "manifest_rps": round(_mean([m.requests_per_second for m in mans]))
                if mans
                else None,
                "manifest_runs": [round(m.requests_per_second) for m in mans],
                "manifest_p99_ms": round(_mean([m.p99_ms for m in mans]), 2) if mans else None,
                "other_load": round(max(b.other_cpu_cores or 0 for b, _ in runs), 2),
            }
        )
    by = {str(r["server"]): r for r in rows}
    print("| server | blob MB/s | runs | manifest GET/s | runs | p99 ms | max other load |")
    print("|---|---:|---|---:|---|---:|---:|")
    for r in rows:
        runs_b = " / ".join(map(str, r["blob_runs"]))  # type: ignore[call-overload]
        runs_m = " / ".join(map(str, r["manifest_runs"])) or "-"  # type: ignore[call-overload]
        print(
            f"| {r['server']} | {r['blob_mb_s']} | {runs_b} | {r['manifest_rps'] or '-'} | "
            f"{runs_m} | {r['manifest_p99_ms'] or '-'} | {r['other_load']} |"
        )
    d, n = by["distribution"], by["nginx"]
    ratios: dict[str, dict[str, float]] = {}
    for name, g in by.items():
        if not name.startswith("graft"):
            continue
        ratios[name] = {
            "blob_vs_distribution": round(float(g["blob_mb_s"]) / float(d["blob_mb_s"]), 2),  # type: ignore[arg-type]
            "blob_vs_nginx": round(float(g["blob_mb_s"]) / float(n["blob_mb_s"]), 2),  # type: ignore[arg-type]
            "manifest_vs_distribution": round(
                float(g["manifest_rps"]) / float(d["manifest_rps"]),  # type: ignore[arg-type]
                2,
            ),
        }
    print(f"\nratios ({args.workers} workers): {ratios}")
    path = write_json("oci", {"machine": machine_info(), "rows": rows, "ratios": ratios})
    print(f"written: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
