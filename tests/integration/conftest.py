from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).parent.name == "integration":
            item.add_marker(pytest.mark.integration)
