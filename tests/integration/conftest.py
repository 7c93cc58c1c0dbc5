from __future__ import annotations

import base64
import json
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.dists import make_sdist, make_wheel
from tests.fixtures.npm_registry import NpmRegistry
from tests.fixtures.simple_index import SimpleIndex
from tests.integration.graftserver import GraftServer


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GraftServer]:
    srv = GraftServer(
        tmp_path_factory.mktemp("graft") / "data",
        auth_cache_seconds=1,
        auth_failure_limit=1000,
        usage_flush_seconds=0.2,
    ).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def dist_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real distributions for the local upstream index (and some to publish)."""
    root = tmp_path_factory.mktemp("dists")
    upstream = root / "upstream"
    upstream.mkdir()
    make_wheel(upstream, "demo-pkg", "1.0")
    make_sdist(upstream, "demo-pkg", "1.0")
    make_wheel(upstream, "demo-pkg", "1.1")
    make_wheel(upstream, "demo-pkg", "2.0", requires_python=">=3.8")
    make_wheel(upstream, "httpish", "2.31.0")
    make_wheel(upstream, "httpish", "2.32.0")
    make_wheel(upstream, "depender", "1.0", requires_dist=["httpish>=2.31"])
    noise = base64.b64encode(random.Random(7).randbytes(3 << 20)).decode()  # incompressible
    make_wheel(upstream, "big-wheel", "1.0", files={"big_wheel/blob.txt": noise})
    return root


@pytest.fixture(scope="module")
def pypi_upstream(dist_dir: Path) -> Iterator[SimpleIndex]:
    with SimpleIndex(dist_dir / "upstream") as index:
        yield index


@pytest.fixture(scope="module")
def pypi_graft(
    tmp_path_factory: pytest.TempPathFactory, pypi_upstream: SimpleIndex
) -> Iterator[GraftServer]:
    upstream = [{"ecosystem": "pypi", "name": "local", "url": pypi_upstream.index_url}]
    srv = GraftServer(
        tmp_path_factory.mktemp("graft-pypi") / "data",
        upstream=json.dumps(upstream),
        auth_failure_limit=1000,
        usage_flush_seconds=0.2,
        upstream_buffer_bytes=1 << 20,  # the 3 MiB wheel takes the streaming path
    ).start()
    yield srv
    srv.stop()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).parent.name == "integration":
            item.add_marker(pytest.mark.integration)


# -- npm: a static upstream registry holding packages built with `npm pack` ------------------
@pytest.fixture(scope="module")
def npm_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NpmRegistry]:
    from tests.fixtures.npm_packages import make_package

    root = tmp_path_factory.mktemp("npm-upstream")
    with NpmRegistry() as registry:
        for version in ("1.0.0", "1.1.0", "2.0.0-beta.1"):
            registry.add(make_package(root, "left-pad", version))
        registry.add(make_package(root, "@acme/util", "2.0.0", dependencies={"left-pad": "^1.0.0"}))
        registry.add(make_package(root, "is-thing", "3.2.1", dependencies={"left-pad": "~1.1.0"}))
        noise = base64.b64encode(random.Random(11).randbytes(3 << 20)).decode()
        registry.add(make_package(root, "big-pkg", "1.0.0", files={"blob.txt": noise}))
        yield registry


@pytest.fixture(scope="module")
def npm_graft(
    tmp_path_factory: pytest.TempPathFactory, npm_upstream: NpmRegistry
) -> Iterator[GraftServer]:
    upstream = [{"ecosystem": "npm", "name": "local", "url": npm_upstream.url}]
    srv = GraftServer(
        tmp_path_factory.mktemp("graft-npm") / "data",
        upstream=json.dumps(upstream),
        auth_failure_limit=1000,
        usage_flush_seconds=0.2,
        upstream_buffer_bytes=1 << 20,  # the 3 MiB tarball takes the streaming path
    ).start()
    yield srv
    srv.stop()
