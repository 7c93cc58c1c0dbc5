"""APT repository benchmark (issue 4): Graft with a 63,000-package upstream, side by side with
reprepro, and `apt-get update` from Graft against nginx serving the same files.

The script builds, in a temp dir:
- an upstream repository of N packages (default 63,000, about a third `Architecture: all`,
  names and versions shaped like Debian's): tiny real `.deb` files in `pool/`, a
  `Packages.xz` listing them, and a Release signed with a gpg key made for the run; served
  on 127.0.0.1 by Python's http.server (Graft reads only the indexes from it).
- Graft (`graft serve`, 1 worker) with that upstream, and measures:
  1. the first `InRelease` (Graft verifies the upstream, builds the `rootio-X` fallback of
     every package, renders, compresses and signs the repository): the full publish;
  2. publishing one patched build (`POST /debian/bookworm/upload`) and the time until
     `InRelease` lists it, re-signed: the incremental publish (target < 2 s), several times;
  3. `apt-get update` from Graft, and from nginx serving a copy of Graft's `dists/` tree as
     static files (the limit), with an isolated apt configuration, alternating, median.
- reprepro (Debian's package, `apt-get install reprepro`) with the same `.deb` files: the
  full publish (`includedeb` of every package with `--export=never`, then `export`, signed
  with the same kind of key), and one more package included and exported (its incremental
  publish).

    .venv/bin/python bench/apt.py                 # 63,000 packages
    .venv/bin/python bench/apt.py --packages 5000 # quicker

Needs: apt-get, apt-utils (apt-ftparchive), gpg, dpkg-deb, reprepro, nginx. Not a test: run it
by hand on a quiet machine.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import http.server
import json
import lzma
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from _common import (
    HOST,
    BenchError,
    GraftServer,
    cleanup_on_interrupt,
    free_port,
    machine_info,
    write_json,
)

from graft.ecosystems.apt import debs  # the project's own .deb writer
from graft.ecosystems.apt.index import render_stanza

CODENAME = "bookworm"


def _gpg(home: Path, *args: str, data: bytes | None = None) -> bytes:
    return subprocess.run(
        ["gpg", "--homedir", str(home), "--batch", "--yes", "--pinentry-mode", "loopback",
         "--passphrase", "", *args],
        input=data, capture_output=True, check=True,
    ).stdout  # fmt: skip


@dataclass
class Upstream:
    root: Path
    keyring: Path
    gnupg: Path
    key_id: str
    debs: list[Path]
    names: list[tuple[str, str, str]]  # (name, version, arch)


def package_names(n: int) -> list[tuple[str, str, str]]:
    rng = random.Random(12)
    words = ["lib", "python3-", "golang-", "node-", "r-cran-", "fonts-", "texlive-", ""]
    out = []
    for i in range(n):
        prefix = words[i % len(words)]
        name = f"{prefix}pkg{i:05d}{'-dev' if i % 5 == 0 else ''}"
        version = (
            f"{rng.randint(0, 9)}.{rng.randint(0, 40)}.{rng.randint(0, 9)}-{rng.randint(1, 5)}"
        )
        if i % 7 == 0:
            version += "+deb12u1"
        arch = "all" if i % 3 == 0 else "amd64"
        out.append((name, version, arch))
    return out


def build_upstream(root: Path, n: int) -> Upstream:
    gnupg = root / "gnupg"
    gnupg.mkdir(parents=True, mode=0o700)
    _gpg(gnupg, "--quick-generate-key", "Bench Archive <bench@example.com>", "ed25519", "sign",
         "never")  # fmt: skip
    key_id = _gpg(gnupg, "--list-keys", "--with-colons").decode().split("fpr:::::::::")[1][:40]
    keyring = root / "upstream-keyring.gpg"
    keyring.write_bytes(_gpg(gnupg, "--export"))
    repo = root / "repo"
    names = package_names(n)
    stanzas = []
    paths = []
    for name, version, arch in names:
        fields = {
            "Package": name, "Version": version, "Architecture": arch,
            "Maintainer": "Bench <bench@example.com>", "Installed-Size": "12",
            "Section": "misc", "Priority": "optional",
            "Description": f"{name} for the benchmark\n a synthetic package",
        }  # fmt: skip
        blob = debs.build_deb(fields)
        rel = f"pool/main/{name[0]}/{name}/{name}_{version}_{arch}.deb"
        path = repo / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(blob)
        paths.append(path)
        stanza = dict(fields, Filename=rel, Size=str(len(blob)))
        stanza["SHA256"] = hashlib.sha256(blob).hexdigest()
        stanzas.append(render_stanza(stanza))
    dist = repo / "dists" / CODENAME
    folder = dist / "main" / "binary-amd64"
    folder.mkdir(parents=True)
    text = "\n".join(stanzas).encode()
    (folder / "Packages").write_bytes(text)
    (folder / "Packages.xz").write_bytes(lzma.compress(text))
    release = subprocess.run(
        ["apt-ftparchive", "-o", "APT::FTPArchive::Release::Origin=Bench", "-o",
         f"APT::FTPArchive::Release::Codename={CODENAME}", "-o",
         "APT::FTPArchive::Release::Architectures=amd64", "-o",
         "APT::FTPArchive::Release::Components=main", "release", "."],
        cwd=dist, capture_output=True, check=True,
    ).stdout  # fmt: skip
    (dist / "Release").write_bytes(release)
    (dist / "InRelease").write_bytes(_gpg(gnupg, "--clearsign", data=release))
    return Upstream(repo, keyring, gnupg, key_id, paths, names)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def static_server(root: Path) -> Iterator[str]:
    handler = functools.partial(_Quiet, directory=os.fspath(root))
    httpd = http.server.ThreadingHTTPServer((HOST, 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{HOST}:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()


# -- Graft -----------------------------------------------------------------------------------
def patched_deb(out: Path, name: str, version: str, arch: str) -> Path:
    fields = {
        "Package": name, "Version": f"{version}.graft.1", "Architecture": arch,
        "Maintainer": "Bench <bench@example.com>", "Section": "misc", "Priority": "optional",
        "Description": f"{name}, patched\n fixed",
    }  # fmt: skip
    path = out / f"{name}_{version}.graft.1_{arch}.deb"
    path.write_bytes(debs.build_deb(fields, {f"./usr/share/doc/{name}/FIXED": b"yes\n"}))
    return path


def measure_graft(
    up: Upstream, upstream_url: str, args: argparse.Namespace, work: Path
) -> dict[str, Any]:
    config = [{"ecosystem": "debian", "name": "bench", "url": upstream_url,
               "keyring": str(up.keyring), "ttl_seconds": 3600}]  # fmt: skip
    settings = {"upstream": json.dumps(config), "access_log": "false",
                "max_upload_bytes": str(1 << 30)}  # fmt: skip
    out: dict[str, Any] = {}
    with GraftServer(server="granian", workers=1, settings=settings) as srv:
        token = srv.cli("token", "create", "--org", "demo", "--account", "admin", "--scope",
                        "publish", "--json")  # fmt: skip
        secret = json.loads(token)["token"]
        base = f"{srv.base_url}/debian/{CODENAME}"
        auth = ("rootio", secret)
        with httpx.Client(timeout=600, auth=auth) as client:
            started = time.monotonic()
            first = client.get(f"{base}/dists/{CODENAME}/InRelease")
            out["full_publish_s"] = round(time.monotonic() - started, 2)
            if first.status_code != 200:
                raise BenchError(f"graft: InRelease answered {first.status_code}: {first.text}")
            print(f"   graft: first InRelease (full publish) {out['full_publish_s']} s",
                  file=sys.stderr)  # fmt: skip
            rng = random.Random(5)
            times, uploads = [], []
            for name, version, arch in rng.sample(up.names, args.publishes):
                deb = patched_deb(work, name, version, arch)
                before = client.get(f"{base}/dists/{CODENAME}/InRelease").content
                started = time.monotonic()
                with deb.open("rb") as fh:
                    r = client.post(f"{base}/upload", files={"file": (deb.name, fh)})
                if r.status_code != 200:
                    raise BenchError(f"graft: upload answered {r.status_code}: {r.text}")
                uploaded = time.monotonic() - started
                while True:
                    after = client.get(f"{base}/dists/{CODENAME}/InRelease")
                    if after.content != before:  # re-signed with the new build
                        break
                    time.sleep(0.02)
                elapsed = time.monotonic() - started
                packages = client.get(f"{base}/dists/{CODENAME}/main/binary-amd64/Packages.xz")
                if f"Version: {version}.graft.1".encode() not in lzma.decompress(packages.content):
                    raise BenchError(f"graft: {name} {version}.graft.1 is not listed")
                times.append(elapsed)
                uploads.append(uploaded)
                print(f"   graft: publish {name} + re-sign {elapsed:.2f} s "
                      f"(upload {uploaded:.2f} s)", file=sys.stderr)  # fmt: skip
            out["publish_one_s"] = [round(t, 3) for t in times]
            out["publish_one_median_s"] = round(statistics.median(times), 3)
            out["upload_request_s"] = [round(t, 3) for t in uploads]
            # Graft's dists/ as static files, for nginx: every path the Release lists.
            release = client.get(f"{base}/dists/{CODENAME}/Release").text
            static = work / "static" / "debian" / CODENAME / "dists" / CODENAME
            listed = {line.split()[2] for line in release.split("SHA256:")[1].splitlines()
                      if line.strip()}  # fmt: skip
            for path in ("InRelease", "Release", "Release.gpg", *listed):
                data = client.get(f"{base}/dists/{CODENAME}/{path}").content
                (static / path).parent.mkdir(parents=True, exist_ok=True)
                (static / path).write_bytes(data)
            for path in listed:  # and the by-hash copies apt asks for
                data = (static / path).read_bytes()
                folder = static / path.rsplit("/", 1)[0] / "by-hash" / "SHA256"
                folder.mkdir(parents=True, exist_ok=True)
                (folder / hashlib.sha256(data).hexdigest()).write_bytes(data)
            keyring = work / "graft.gpg"
            keyring.write_bytes(
                client.get(f"{srv.base_url}/keys/graft-archive-keyring.gpg").content
            )
            out["apt_update_s"] = measure_apt_update(srv.base_url, secret, keyring, work, args)
    return out


def measure_apt_update(
    graft_url: str, token: str, keyring: Path, work: Path, args: argparse.Namespace
) -> dict[str, list[float]]:
    nginx_root = work / "static"
    port = free_port()
    conf = work / "nginx.conf"
    user = "user root;\n" if os.geteuid() == 0 else ""
    temp = "".join(f"{k}_temp_path {work / ('nginx-' + k)};\n"
                   for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))  # fmt: skip
    conf.write_text(
        f"{user}worker_processes 2; daemon off; pid {work / 'nginx.pid'};\n"
        f"error_log {work / 'nginx-error.log'} warn; events {{ worker_connections 1024; }}\n"
        f"http {{ access_log off; sendfile on; tcp_nopush on; {temp}\n"
        f"  server {{ listen {HOST}:{port}; root {nginx_root}; }} }}\n"
    )
    exe = shutil.which("nginx") or "/usr/sbin/nginx"
    nginx = subprocess.Popen([exe, "-c", str(conf), "-p", str(work)], start_new_session=True)
    times: dict[str, list[float]] = {"graft": [], "nginx": []}
    try:
        time.sleep(1.0)
        sources = {"graft": graft_url, "nginx": f"http://{HOST}:{port}"}
        for round_no in range(args.apt_runs):
            order = list(sources) if round_no % 2 == 0 else list(reversed(sources))
            for name in order:
                seconds = apt_update(sources[name], token, keyring, work / f"apt-{name}")
                times[name].append(round(seconds, 3))
                print(f"   apt-get update from {name}: {seconds:.2f} s", file=sys.stderr)
    finally:
        nginx.terminate()
        nginx.wait(10)
    return times


def apt_update(url: str, token: str, keyring: Path, base: Path) -> float:
    shutil.rmtree(base, ignore_errors=True)
    for d in ("state/lists/partial", "cache/archives/partial", "parts"):
        (base / d).mkdir(parents=True, exist_ok=True)
    (base / "status").touch()
    (base / "sources.list").write_text(
        f"deb [signed-by={keyring}] {url}/debian/{CODENAME} {CODENAME} main\n"
    )
    (base / "auth.conf").write_text(f"machine {url}/debian login rootio password {token}\n")
    (base / "auth.conf").chmod(0o600)
    opts = {
        "Dir::Etc::sourcelist": base / "sources.list", "Dir::Etc::sourceparts": base / "parts",
        "Dir::Etc::netrc": base / "auth.conf", "Dir::Etc::netrcparts": base / "parts",
        "Dir::Etc::trustedparts": base / "parts", "Dir::State": base / "state",
        "Dir::State::status": base / "status", "Dir::Cache": base / "cache",
        "Debug::NoLocking": "1", "APT::Architecture": "amd64", "APT::Architectures": "amd64",
        "Acquire::Languages": "none", "APT::Sandbox::User": "root",
    }  # fmt: skip
    cmd = ["apt-get"] + [a for k, v in opts.items() for a in ("-o", f"{k}={v}")] + ["update"]
    started = time.monotonic()
    done = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    seconds = time.monotonic() - started
    if done.returncode != 0 or "W:" in done.stdout + done.stderr:
        raise BenchError(f"apt-get update from {url} failed:\n{done.stdout}\n{done.stderr}")
    return seconds


# -- reprepro --------------------------------------------------------------------------------
def measure_reprepro(up: Upstream, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    base = work / "reprepro"
    (base / "conf").mkdir(parents=True)
    (base / "conf" / "distributions").write_text(
        f"Codename: {CODENAME}\nSuite: {CODENAME}\nComponents: main\n"
        f"Architectures: amd64 arm64\nSignWith: {up.key_id}\n"
    )
    env = dict(os.environ, GNUPGHOME=str(up.gnupg))
    started = time.monotonic()
    batch = 2000
    for i in range(0, len(up.debs), batch):
        subprocess.run(
            ["reprepro", "-b", str(base), "--export=never", "-s", "includedeb", CODENAME,
             *map(str, up.debs[i : i + batch])],
            env=env, capture_output=True, check=True,
        )  # fmt: skip
        print(f"   reprepro: {min(i + batch, len(up.debs))} included", file=sys.stderr)
    subprocess.run(["reprepro", "-b", str(base), "export", CODENAME], env=env,
                   capture_output=True, check=True)  # fmt: skip
    full = time.monotonic() - started
    times = []
    rng = random.Random(5)
    for name, version, arch in rng.sample(up.names, args.publishes):
        deb = patched_deb(work, name, version, arch)
        started = time.monotonic()
        subprocess.run(["reprepro", "-b", str(base), "includedeb", CODENAME, str(deb)], env=env,
                       capture_output=True, check=True)  # fmt: skip
        times.append(time.monotonic() - started)
        print(f"   reprepro: include {name} + export {times[-1]:.2f} s", file=sys.stderr)
    return {
        "full_publish_s": round(full, 2),
        "publish_one_s": [round(t, 3) for t in times],
        "publish_one_median_s": round(statistics.median(times), 3),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--packages", type=int, default=63_000, help="upstream packages (63000)")
    p.add_argument("--publishes", type=int, default=5, help="single publishes timed (5)")
    p.add_argument("--apt-runs", type=int, default=5, help="apt-get update runs per source (5)")
    p.add_argument("--no-reprepro", action="store_true", help="skip reprepro")
    p.add_argument("--no-json", action="store_true", help="do not write bench/results/*.json")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with cleanup_on_interrupt(), tempfile.TemporaryDirectory(prefix="graft-bench-apt-") as tmp:
        work = Path(tmp)
        print(f"== building an upstream of {args.packages} packages in {work}", file=sys.stderr)
        started = time.monotonic()
        up = build_upstream(work / "upstream", args.packages)
        print(f"   built in {time.monotonic() - started:.1f} s", file=sys.stderr)
        results: dict[str, Any] = {"machine": machine_info(), "packages": args.packages}
        try:
            with static_server(up.root) as url:
                print("== graft", file=sys.stderr)
                results["graft"] = measure_graft(up, url, args, work)
            if not args.no_reprepro:
                print("== reprepro", file=sys.stderr)
                results["reprepro"] = measure_reprepro(up, work, args)
        except (BenchError, subprocess.CalledProcessError) as exc:
            detail = getattr(exc, "stderr", b"") or b""
            print(f"\nbenchmark failed: {exc} {detail[:500]!r}", file=sys.stderr)
            return 2
    g = results["graft"]
    print(f"\n| {args.packages} packages | Graft | reprepro | Graft ÷ reprepro |")
    print("|---|---:|---:|---:|")
    r = results.get("reprepro")
    for key, label in (("full_publish_s", "full publish, s"),
                       ("publish_one_median_s", "publish one + re-sign, median s")):  # fmt: skip
        ratio = f"{g[key] / r[key]:.2f}" if r else "-"
        print(f"| {label} | {g[key]} | {r[key] if r else '-'} | {ratio} |")
    apt = g["apt_update_s"]
    gm, nm = statistics.median(apt["graft"]), statistics.median(apt["nginx"])
    print(f"\napt-get update: Graft {gm:.2f} s, nginx (same files) {nm:.2f} s, "
          f"ratio {gm / nm:.2f} (runs: graft {apt['graft']}, nginx {apt['nginx']})")  # fmt: skip
    met = "met" if g["publish_one_median_s"] < 2 else "NOT met"
    print(f"- publish one patched build + re-sign < 2 s: {g['publish_one_median_s']} s: {met}")
    if not args.no_json:
        print(f"JSON: {write_json('apt', results)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
