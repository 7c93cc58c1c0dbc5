"""Auth overhead and server choice: small GETs per second with and without token auth.

For each server (granian, uvicorn) at the same worker count, this starts `graft serve` on a free
127.0.0.1 port with a fresh data directory and `GRAFT_BENCH_ROUTES=true`, creates a read token,
warms up, then runs `wrk` against `/_bench/open` (no auth) and `/_bench/auth` (the same handler
behind token auth, HTTP Basic), alternating open/auth/open/auth and averaging the rounds. It
prints a Markdown table (req/s, p50, p99, auth cost = 1 - auth/open, granian/uvicorn ratio) and
writes the same as JSON under bench/results/.

    .venv/bin/python bench/auth.py --workers 1
    .venv/bin/python bench/auth.py --workers 2 --access-log both

Budget: auth must cost under 10 % of throughput (--budget). Any non-2xx/3xx answer fails the run.
Not a test: run it by hand on a quiet machine; wrk shares the CPUs with the server.
"""

from __future__ import annotations

import argparse
import base64
import json
import statistics
import sys
from dataclasses import dataclass
from typing import Any

import httpx
from _common import (
    TOKEN_RE,
    BenchError,
    GraftServer,
    WrkResult,
    cleanup_on_interrupt,
    duration_seconds,
    machine_info,
    run_wrk,
    write_json,
)

ROUTES = ("open", "auth")
SERVERS = ("granian", "uvicorn")
QUIET_CORES = 0.2  # more CPU than this used by other processes during a run: warn
BASIC_USER = "rootio"  # any username is accepted; the token is the password


@dataclass
class Cell:
    """One server x workers x access-log x route: every measured round."""

    server: str
    workers: int
    access_log: bool
    route: str
    runs: list[WrkResult]

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

    @property
    def key(self) -> tuple[int, bool, str]:
        return (self.workers, self.access_log, self.route)

    def as_dict(self) -> dict[str, Any]:
        return {
            "server": self.server,
            "workers": self.workers,
            "access_log": self.access_log,
            "route": self.route,
            "rps_mean": round(self.rps, 1),
            "p50_ms_mean": round(self.p50, 3),
            "p99_ms_mean": round(self.p99, 3),
            "server_cpu_us_per_request_mean": round(self.cpu_us, 1) if self.cpu_us else None,
            "cpu_steal_percent_max": self.steal,
            "other_cpu_cores_max": self.other_cpu,
            "runs": [r.as_dict() for r in self.runs],
        }


def make_token(srv: GraftServer) -> str:
    """A read-scoped token for the demo admin account, via `graft token create --json`."""
    out = srv.cli(
        "token", "create", "--org", "demo", "--account", "admin", "--scope", "read", "--json"
    )
    try:
        token = json.loads(out)["token"]
    except (ValueError, KeyError, TypeError):
        raise BenchError(f"unexpected `graft token create --json` output: {out!r}") from None
    if not isinstance(token, str) or not TOKEN_RE.match(token):
        raise BenchError("`graft token create --json` returned no well-formed token")
    return token


def check_routes(srv: GraftServer, auth_header: str) -> None:
    """The two routes must differ only by auth: open answers anonymously, auth refuses that."""
    with httpx.Client(base_url=srv.base_url, timeout=5.0) as client:
        checks = [
            ("/_bench/open", {}, 200),
            ("/_bench/auth", {}, 401),
            ("/_bench/auth", {"Authorization": auth_header}, 200),
        ]
        for path, headers, expected in checks:
            got = client.get(path, headers=headers)
            if got.status_code != expected:
                raise BenchError(
                    f"{srv.server}: GET {path} {'with' if headers else 'without'} token answered "
                    f"{got.status_code}, expected {expected} (is GRAFT_BENCH_ROUTES honoured?)"
                )


def count_lines(srv: GraftServer) -> int:
    with open(srv.stdout_path, "rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))


def bench_server(
    server: str, workers: int, access_log: bool, args: argparse.Namespace
) -> tuple[list[Cell], dict[str, Any]]:
    settings = {"bench_routes": "true", "access_log": "true" if access_log else "false"}
    label = f"{server} workers={workers} access_log={'on' if access_log else 'off'}"
    print(f"== {label}", file=sys.stderr, flush=True)
    with GraftServer(server=server, workers=workers, settings=settings) as srv:
        token = make_token(srv)
        basic = base64.b64encode(f"{BASIC_USER}:{token}".encode()).decode()
        headers = {"open": {}, "auth": {"Authorization": f"Basic {basic}"}}
        check_routes(srv, headers["auth"]["Authorization"])

        def wrk(route: str, duration: str) -> WrkResult:
            result = run_wrk(
                f"{srv.base_url}/_bench/{route}",
                threads=args.threads,
                connections=args.connections,
                duration=duration,
                headers=headers[route],
                server=srv,
            )
            if result.non_2xx_3xx:
                raise BenchError(
                    f"{label}: {result.non_2xx_3xx} non-2xx/3xx answers on /_bench/{route} "
                    f"out of {result.requests}: the figure would be meaningless"
                )
            if (result.other_cpu_cores or 0) > QUIET_CORES:
                print(
                    f"   warning: other processes used {result.other_cpu_cores:.2f} cores during "
                    "this run: the machine is not quiet, figures are noisy",
                    file=sys.stderr,
                )
            if sum(result.socket_errors.values()):
                print(f"   warning: socket errors {result.socket_errors}", file=sys.stderr)
            return result

        if duration_seconds(args.warmup) > 0:
            for route in ROUTES:  # JIT-free Python still warms: imports, caches, the token cache
                wrk(route, args.warmup)
        runs: dict[str, list[WrkResult]] = {route: [] for route in ROUTES}
        for round_no in range(1, args.rounds + 1):
            for route in ROUTES:  # open, auth, open, auth: drift does not favour either
                result = wrk(route, args.duration)
                runs[route].append(result)
                print(
                    f"   round {round_no} {route:<4} {result.requests_per_second:>9.1f} req/s  "
                    f"p50 {result.p50_ms:.2f} ms  p99 {result.p99_ms:.2f} ms  "
                    f"server CPU {_fmt(result.server_cpu_us_per_request, '.0f')} µs/req  "
                    f"steal {_fmt(result.cpu_steal_percent, '.1f')} %  "
                    f"other load {_fmt(result.other_cpu_cores, '.2f')} cores",
                    file=sys.stderr,
                    flush=True,
                )
        measured = sum(r.requests for rs in runs.values() for r in rs)
        srv.stop()  # flushes the access log before it is counted
        log_lines = count_lines(srv)
        stderr_tail = srv.stderr_tail(5)
    info = {
        "server": server,
        "workers": workers,
        "access_log": access_log,
        "requests_measured": measured,
        "stdout_lines": log_lines,
        "stderr_tail": stderr_tail,
    }
    if access_log and log_lines < measured:
        print(
            f"   warning: {log_lines} access-log lines for {measured} measured requests",
            file=sys.stderr,
        )
    cells = [Cell(server, workers, access_log, route, runs[route]) for route in ROUTES]
    return cells, info


def _pair(cells: list[Cell], server: str, workers: int, access_log: bool) -> dict[str, Cell]:
    return {
        c.route: c
        for c in cells
        if (c.server, c.workers, c.access_log) == (server, workers, access_log)
    }


def auth_cost(cells: list[Cell], server: str, workers: int, access_log: bool) -> float | None:
    """1 - auth req/s / open req/s: the throughput lost to authentication."""
    pair = _pair(cells, server, workers, access_log)
    if "open" not in pair or "auth" not in pair or not pair["open"].rps:
        return None
    return 1 - pair["auth"].rps / pair["open"].rps


def round_costs(cells: list[Cell], server: str, workers: int, access_log: bool) -> list[float]:
    """1 - auth/open of each round's pair (open run i, auth run i): shows the run-to-run noise."""
    pair = _pair(cells, server, workers, access_log)
    if "open" not in pair or "auth" not in pair:
        return []
    return [
        1 - a.requests_per_second / o.requests_per_second
        for o, a in zip(pair["open"].runs, pair["auth"].runs, strict=True)
        if o.requests_per_second
    ]


def auth_cpu_cost(cells: list[Cell], server: str, workers: int, access_log: bool) -> float | None:
    """1 - open CPU/request / auth CPU/request: the throughput a CPU-bound server would lose;
    steadier than req/s when other guests steal CPU or wrk competes for it."""
    pair = _pair(cells, server, workers, access_log)
    if "open" not in pair or "auth" not in pair:
        return None
    open_cpu, auth_cpu = pair["open"].cpu_us, pair["auth"].cpu_us
    if not open_cpu or not auth_cpu:
        return None
    return 1 - open_cpu / auth_cpu


def server_ratio(cells: list[Cell], cell: Cell) -> float | None:
    """granian req/s / uvicorn req/s on the same route, workers and access-log setting."""
    rps = {c.server: c.rps for c in cells if c.key == cell.key}
    if "granian" in rps and rps.get("uvicorn"):
        return rps["granian"] / rps["uvicorn"]
    return None


def _fmt(value: float | None, spec: str, suffix: str = "") -> str:
    return "" if value is None else f"{value:{spec}}{suffix}"


def markdown(cells: list[Cell], args: argparse.Namespace) -> str:
    lines = [
        f"wrk -t{args.threads} -c{args.connections} -d{args.duration} --latency, "
        f"mean of {args.rounds} alternating rounds per route",
        "",
        "| server | workers | access log | route | req/s | runs (req/s) | p50 ms | p99 ms "
        "| auth cost | granian/uvicorn | server CPU µs/req | auth cost by CPU | max steal "
        "| max other load |",
        "|---|---:|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in cells:
        mine = (cells, c.server, c.workers, c.access_log)
        cost = auth_cost(*mine) if c.route == "auth" else None
        cpu_cost = auth_cpu_cost(*mine) if c.route == "auth" else None
        ratio = server_ratio(cells, c) if c.server == "granian" else None
        runs = " / ".join(f"{r.requests_per_second:.0f}" for r in c.runs)
        lines.append(
            f"| {c.server} | {c.workers} | {'on' if c.access_log else 'off'} | {c.route} "
            f"| {c.rps:.0f} | {runs} | {c.p50:.2f} | {c.p99:.2f} "
            f"| {_fmt(cost and cost * 100, '.1f', ' %')} | {_fmt(ratio, '.2f', 'x')} "
            f"| {_fmt(c.cpu_us, '.0f')} | {_fmt(cpu_cost and cpu_cost * 100, '.1f', ' %')} "
            f"| {_fmt(c.steal, '.1f', ' %')} | {_fmt(c.other_cpu, '.2f', ' cores')} |"
        )
    return "\n".join(lines)


def verdicts(cells: list[Cell], budget: float) -> tuple[list[str], bool]:
    out, within = [], True
    seen = sorted({(c.workers, c.access_log, c.server) for c in cells})
    for workers, access_log, server in seen:
        cost = auth_cost(cells, server, workers, access_log)
        if cost is None:
            continue
        ok = cost < budget / 100
        within &= ok
        cpu_cost = auth_cpu_cost(cells, server, workers, access_log)
        by_cpu = f"; by server CPU per request: {cpu_cost * 100:.1f} %" if cpu_cost else ""
        per_round = round_costs(cells, server, workers, access_log)
        rounds = ", ".join(f"{c * 100:.1f}" for c in per_round)
        if len(per_round) > 2:  # the median round resists one disturbed round
            rounds += f"; median {statistics.median(per_round) * 100:.1f}"
        out.append(
            f"{server} workers={workers} access_log={'on' if access_log else 'off'}: auth costs "
            f"{cost * 100:.1f} % of throughput (per round: {rounds} %{by_cpu}): "
            + ("within" if ok else "OVER")
            + f" the {budget:g} % budget"
        )
    return out, within


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--workers", type=int, nargs="+", default=[1], help="worker counts (1)")
    p.add_argument("--servers", nargs="+", choices=SERVERS, default=list(SERVERS))
    p.add_argument("--duration", default="10s", help="wrk -d per measured run (10s)")
    p.add_argument("--connections", type=int, default=64, help="wrk -c (64)")
    p.add_argument("--threads", type=int, default=2, help="wrk -t (2)")
    p.add_argument("--rounds", type=int, default=4, help="open/auth pairs per server (4)")
    p.add_argument("--warmup", default="3s", help="wrk run per route before measuring (3s)")
    log = p.add_mutually_exclusive_group()
    log.add_argument(
        "--access-log",
        choices=("on", "off", "both"),
        default="on",
        help="GRAFT_ACCESS_LOG for the server; both = measure each (on)",
    )
    log.add_argument(
        "--no-access-log",
        dest="access_log",
        action="store_const",
        const="off",
        help="same as --access-log off",
    )
    p.add_argument("--budget", type=float, default=10.0, help="max auth cost in %% (10)")
    p.add_argument("--no-json", action="store_true", help="do not write bench/results/*.json")
    args = p.parse_args(argv)
    if min(args.workers) < 1 or args.rounds < 1 or args.threads < 1:
        p.error("--workers, --rounds and --threads must be at least 1")
    if args.connections < args.threads:
        p.error("--connections must be at least --threads")
    for name in ("duration", "warmup"):
        try:
            duration_seconds(getattr(args, name))
        except ValueError as exc:
            p.error(f"--{name}: {exc}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    modes = {"on": [True], "off": [False], "both": [True, False]}[args.access_log]
    meta = machine_info()
    cells: list[Cell] = []
    servers_info: list[dict[str, Any]] = []
    with cleanup_on_interrupt():
        try:
            for workers in args.workers:
                for access_log in modes:
                    for server in args.servers:
                        new, info = bench_server(server, workers, access_log, args)
                        cells += new
                        servers_info.append(info)
        except BenchError as exc:
            print(f"\nbenchmark failed: {exc}", file=sys.stderr)
            return 2
    table = markdown(cells, args)
    lines, within = verdicts(cells, args.budget)
    print(table)
    print()
    for line in lines:
        print(f"- {line}")
    if not args.no_json:
        path = write_json(
            "auth",
            {
                "benchmark": "auth",
                "machine": meta,
                "params": {
                    k: getattr(args, k)
                    for k in ("workers", "servers", "duration", "connections", "threads")
                }
                | {"rounds": args.rounds, "warmup": args.warmup, "access_log": args.access_log},
                "budget_percent": args.budget,
                "cells": [c.as_dict() for c in cells],
                "auth_cost_percent": [
                    {
                        "server": s,
                        "workers": w,
                        "access_log": a,
                        "value": round(cost * 100, 2),
                        "per_round": [round(x * 100, 2) for x in round_costs(cells, s, w, a)],
                        "by_server_cpu": round(cpu * 100, 2)
                        if (cpu := auth_cpu_cost(cells, s, w, a)) is not None
                        else None,
                    }
                    for w, a, s in sorted({(c.workers, c.access_log, c.server) for c in cells})
                    if (cost := auth_cost(cells, s, w, a)) is not None
                ],
                "granian_over_uvicorn": [
                    {
                        "workers": c.workers,
                        "access_log": c.access_log,
                        "route": c.route,
                        "value": round(ratio, 3),
                    }
                    for c in cells
                    if c.server == "granian" and (ratio := server_ratio(cells, c)) is not None
                ],
                "within_budget": within,
                "servers": servers_info,
                "markdown": table,
            },
        )
        print(f"\nJSON: {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
