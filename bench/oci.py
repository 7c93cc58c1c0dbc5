"""Container registry benchmark (issue 5): Graft side by side with CNCF distribution (Debian's
`docker-registry`) and nginx, on the same image.

- One image: a 64 MiB random layer, a small config, an OCI manifest; pushed to distribution
  (no auth, its default logging) and to Graft (publish token; access log on).
- nginx (worker_processes 2, sendfile) serves the same 64 MiB blob file: the limit.
- blob: `wrk -t2 -c4 -d10s` GET of the layer; MB/s = wrk's Transfer/sec.
- manifests: `wrk -t2 -c64 -d10s --latency` GET of the manifest by tag with the Accept header
  docker sends; Graft with Basic credentials (read token), distribution without auth.

Run by hand on a quiet machine, under the exclusive lock:

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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--duration", default="10s")
    parser.add_argument("--size-mib", type=int, default=64)
    args = parser.parse_args()
    layer, config, manifest = build_image(args.size_mib << 20)
    layer_url = f"/v2/bench/app/blobs/{sha256(layer)}"
    manifest_url = "/v2/bench/app/manifests/latest"
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="graft-bench-oci-") as tmp:
        workdir = Path(tmp)
        blob_file = workdir / "layer.bin"
        blob_file.write_bytes(layer)
        peers: list[Proc] = []
        try:
            ng, ng_url = nginx(workdir, blob_file)
            peers.append(ng)
            dist, dist_url = distribution(workdir)
            peers.append(dist)
            push(dist_url, {}, [config, layer], manifest)
            with GraftServer(server="granian", workers=args.workers) as graft:
                admin = graft.cli(
                    "token",
                    "create",
                    "--org",
                    "demo",
                    "--account",
                    "admin",
                    "--scope",
                    "publish",
                    "--json",
                )
                publish = json.loads(admin)["token"]
                basic = "Basic " + base64.b64encode(f"rootio:{publish}".encode()).decode()
                push(graft.base_url, {"Authorization": basic}, [config, layer], manifest)
                read = make_read_token(graft)
                auth = {"Authorization": "Basic " + base64.b64encode(f"r:{read}".encode()).decode()}
                targets = [
                    ("nginx", (f"{ng_url}/layer", ""), ng, {}),
                    ("distribution", (dist_url + layer_url, dist_url + manifest_url), dist, {}),
                    (
                        "graft",
                        (graft.base_url + layer_url, graft.base_url + manifest_url),
                        graft,
                        auth,
                    ),
                ]
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
                for name, urls, meter, headers in targets:
                    blob, man = measure(name, urls[0], urls[1], meter, args, headers)
                    rows.append(
                        {
                            "server": name,
                            "blob_mb_s": round((blob.transfer_bytes_per_second or 0) / (1 << 20)),
                            "blob_other_load": blob.other_cpu_cores,
                            "manifest_rps": round(man.requests_per_second) if man else None,
                            "manifest_p99_ms": man.p99_ms if man else None,
                            "manifest_other_load": man.other_cpu_cores if man else None,
                        }
                    )
        finally:
            for peer in peers:
                peer.stop()
    by = {r["server"]: r for r in rows}
    g, d, n = by["graft"], by["distribution"], by["nginx"]
    print("| server | blob MB/s | other load | manifest GET/s | p99 ms | other load |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['server']} | {r['blob_mb_s']} | {r['blob_other_load']} | "
            f"{r['manifest_rps'] or '-'} | {r['manifest_p99_ms'] or '-'} | "
            f"{r['manifest_other_load'] if r['manifest_rps'] else '-'} |"
        )
    ratios = {
        "blob_vs_distribution": round(float(g["blob_mb_s"]) / float(d["blob_mb_s"]), 2),  # type: ignore[arg-type]
        "blob_vs_nginx": round(float(g["blob_mb_s"]) / float(n["blob_mb_s"]), 2),  # type: ignore[arg-type]
        "manifest_vs_distribution": round(
            float(g["manifest_rps"]) / float(d["manifest_rps"]),
            2,  # type: ignore[arg-type]
        ),
    }
    print(f"\nratios (graft, {args.workers} workers): {ratios}")
    path = write_json("oci", {"machine": machine_info(), "rows": rows, "ratios": ratios})
    print(f"written: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
