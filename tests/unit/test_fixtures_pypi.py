"""The PyPI test fixtures work: real wheels/sdists, and a real PEP 503/691 index pip can use."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import threading
import time
import zipfile
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

from tests.fixtures.dists import make_sdist, make_wheel, sha256_file, wheel_metadata
from tests.fixtures.simple_index import HTML_V1, JSON_V1, SimpleIndex, count

WHEEL_1 = "demo_pkg-1.0-py3-none-any.whl"
SDIST_1 = "demo_pkg-1.0.tar.gz"
WHEEL_2 = "demo_pkg-2.0-py3-none-any.whl"
PIP_ACCEPT = f"{JSON_V1}, {HTML_V1}; q=0.1, text/html; q=0.01"


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.links.append(dict(attrs))


def parse_links(page: str) -> dict[str, dict[str, str | None]]:
    """File name (from the href) -> the <a> attributes, unescaped by the HTML parser."""
    parser = _Links()
    parser.feed(page)
    out: dict[str, dict[str, str | None]] = {}
    for attrs in parser.links:
        href = attrs["href"] or ""
        out[href.split("#", 1)[0].rsplit("/", 1)[-1]] = attrs
    return out


@pytest.fixture(scope="module")
def dist_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("upstream")
    make_wheel(root, "demo-pkg", "1.0")
    make_sdist(root, "demo-pkg", "1.0")
    make_wheel(root, "demo-pkg", "2.0", requires_python=">=3.8")
    return root


@pytest.fixture(scope="module")
def module_index(dist_dir: Path) -> Iterator[SimpleIndex]:
    with SimpleIndex(dist_dir) as index:
        yield index


@pytest.fixture
def index(module_index: SimpleIndex) -> Iterator[SimpleIndex]:
    """The shared index with its test controls reset around each test."""
    module_index.requests.clear()
    yield module_index
    module_index.down = False
    module_index.corrupt.clear()
    module_index.delay = 0.0
    module_index.required_auth = None
    module_index.yanked.clear()
    module_index.force_html = False
    module_index.requests.clear()


def pip_env() -> dict[str, str]:
    """pip without the machine's config (find-links, extra indexes): only the test index."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    return env


def run_pip(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "pip", *args[:1]]
    command += ["--no-cache-dir", "--disable-pip-version-check", "--no-input", "--timeout", "10"]
    command += args[1:]
    proc = subprocess.run(
        command, env=pip_env(), capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, f"pip {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


# -- dists ---------------------------------------------------------------------------------


def test_wheel_is_complete_and_its_record_is_correct(tmp_path: Path) -> None:
    path = make_wheel(
        tmp_path, "Demo.Pkg", "1.0", requires_python=">=3.8", requires_dist=["idna>=3"]
    )
    assert path.name == WHEEL_1
    with zipfile.ZipFile(path) as zf:
        names = set(zf.namelist())
        assert names == {
            "demo_pkg/__init__.py",
            "demo_pkg-1.0.dist-info/METADATA",
            "demo_pkg-1.0.dist-info/WHEEL",
            "demo_pkg-1.0.dist-info/RECORD",
        }
        assert zf.read("demo_pkg/__init__.py") == b'__version__ = "1.0"\n'
        wheel = zf.read("demo_pkg-1.0.dist-info/WHEEL").decode()
        assert "Wheel-Version: 1.0\n" in wheel
        assert "Root-Is-Purelib: true\n" in wheel
        assert "Tag: py3-none-any\n" in wheel
        rows = list(csv.reader(io.StringIO(zf.read("demo_pkg-1.0.dist-info/RECORD").decode())))
        assert {row[0] for row in rows} == names
        for file_name, digest, size in rows:
            if file_name.endswith("/RECORD"):
                assert (digest, size) == ("", "")
                continue
            data = zf.read(file_name)
            want = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            assert digest == f"sha256={want}"
            assert int(size) == len(data)
    metadata = wheel_metadata(path).decode()
    assert metadata.startswith("Metadata-Version: 2.1\nName: Demo.Pkg\nVersion: 1.0\n")
    assert "Requires-Python: >=3.8\n" in metadata
    assert "Requires-Dist: idna>=3\n" in metadata
    assert sha256_file(path) == hashlib.sha256(path.read_bytes()).hexdigest()
    # Deterministic: the same arguments give the same bytes.
    again = make_wheel(
        tmp_path / "again", "Demo.Pkg", "1.0", requires_python=">=3.8", requires_dist=["idna>=3"]
    )
    assert sha256_file(again) == sha256_file(path)


def test_wheel_options_local_version_custom_files_and_lying_metadata(tmp_path: Path) -> None:
    local = make_wheel(tmp_path, "requests", "2.31.0+graft.1")
    assert local.name == "requests-2.31.0+graft.1-py3-none-any.whl"
    assert b"Version: 2.31.0+graft.1\n" in wheel_metadata(local)

    custom = make_wheel(tmp_path, "single", "0.1", files={"single.py": "X = 1\n"})
    with zipfile.ZipFile(custom) as zf:
        assert "single.py" in zf.namelist()
        assert "single/__init__.py" not in zf.namelist()

    liar = make_wheel(tmp_path, "honest", "1.0", metadata_name="other", metadata_version="9.9")
    assert liar.name == "honest-1.0-py3-none-any.whl"
    assert b"Name: other\nVersion: 9.9\n" in wheel_metadata(liar)


def test_sdist_is_inspectable(tmp_path: Path) -> None:
    path = make_sdist(tmp_path, "Demo.Pkg", "1.0", requires_python=">=3.8")
    assert path.name == SDIST_1
    with tarfile.open(path) as tar:
        files = {m.name for m in tar.getmembers() if m.isfile()}
        assert files == {
            "demo_pkg-1.0/PKG-INFO",
            "demo_pkg-1.0/pyproject.toml",
            "demo_pkg-1.0/demo_pkg/__init__.py",
        }
        pkg_info = tar.extractfile("demo_pkg-1.0/PKG-INFO")
        assert pkg_info is not None
        text = pkg_info.read().decode()
        pyproject = tar.extractfile("demo_pkg-1.0/pyproject.toml")
        assert pyproject is not None
        assert b'build-backend = "setuptools.build_meta"' in pyproject.read()
    assert text.startswith("Metadata-Version: 2.1\nName: Demo.Pkg\nVersion: 1.0\n")
    assert "Requires-Python: >=3.8\n" in text
    liar = make_sdist(tmp_path, "honest", "1.0", metadata_version="2.0")
    with tarfile.open(liar) as tar:
        member = tar.extractfile("honest-1.0/PKG-INFO")
        assert member is not None
        assert b"Version: 2.0\n" in member.read()


# -- the index -----------------------------------------------------------------------------


def test_json_project_page(index: SimpleIndex, dist_dir: Path) -> None:
    resp = httpx.get(f"{index.index_url}demo-pkg/", headers={"Accept": PIP_ACCEPT})
    assert resp.status_code == 200
    assert resp.headers["content-type"] == JSON_V1
    doc = resp.json()
    assert doc["meta"] == {"api-version": "1.1"}
    assert doc["name"] == "demo-pkg"
    assert doc["versions"] == ["1.0", "2.0"]
    files = {f["filename"]: f for f in doc["files"]}
    assert set(files) == {WHEEL_1, SDIST_1, WHEEL_2}
    for name, entry in files.items():
        path = dist_dir / name
        assert entry["url"] == f"{index.url}/files/{name}"
        assert entry["hashes"] == {"sha256": sha256_file(path)}
        assert entry["size"] == path.stat().st_size
        assert entry["yanked"] is False
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", entry["upload-time"])
    assert "requires-python" not in files[WHEEL_1]
    assert files[WHEEL_2]["requires-python"] == ">=3.8"
    for wheel in (WHEEL_1, WHEEL_2):
        meta_hash = hashlib.sha256(wheel_metadata(dist_dir / wheel)).hexdigest()
        assert files[wheel]["core-metadata"] == {"sha256": meta_hash}
        assert files[wheel]["data-dist-info-metadata"] == {"sha256": meta_hash}
    assert files[SDIST_1]["core-metadata"] is False


def test_html_project_page(index: SimpleIndex, dist_dir: Path) -> None:
    resp = httpx.get(f"{index.index_url}demo-pkg/")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/html")
    assert 'data-requires-python="&gt;=3.8"' in resp.text
    links = parse_links(resp.text)
    assert set(links) == {WHEEL_1, SDIST_1, WHEEL_2}
    for name, attrs in links.items():
        assert attrs["href"] == f"{index.url}/files/{name}#sha256={sha256_file(dist_dir / name)}"
        assert "data-yanked" not in attrs
    assert links[WHEEL_2]["data-requires-python"] == ">=3.8"
    assert "data-requires-python" not in links[WHEEL_1]
    meta_hash = hashlib.sha256(wheel_metadata(dist_dir / WHEEL_2)).hexdigest()
    assert links[WHEEL_2]["data-core-metadata"] == f"sha256={meta_hash}"
    assert links[WHEEL_2]["data-dist-info-metadata"] == f"sha256={meta_hash}"
    assert "data-core-metadata" not in links[SDIST_1]
    # The PEP 691 HTML media type is answered as such.
    v1_html = httpx.get(f"{index.index_url}demo-pkg/", headers={"Accept": HTML_V1})
    assert v1_html.headers["content-type"] == HTML_V1
    # An HTML-only upstream ignores Accept.
    index.force_html = True
    forced = httpx.get(f"{index.index_url}demo-pkg/", headers={"Accept": JSON_V1})
    assert forced.headers["content-type"].startswith("text/html")
    assert set(parse_links(forced.text)) == {WHEEL_1, SDIST_1, WHEEL_2}


def test_project_list_unknown_projects_and_name_normalization(index: SimpleIndex) -> None:
    doc = httpx.get(index.index_url, headers={"Accept": JSON_V1}).json()
    assert doc == {"meta": {"api-version": "1.1"}, "projects": [{"name": "demo-pkg"}]}
    assert 'href="/simple/demo-pkg/"' in httpx.get(index.index_url).text
    assert httpx.get(f"{index.index_url}nope/").status_code == 404
    moved = httpx.get(f"{index.index_url}Demo_Pkg/")
    assert moved.status_code == 301
    assert moved.headers["location"].endswith("/simple/demo-pkg/")
    followed = httpx.get(f"{index.index_url}Demo.Pkg/", follow_redirects=True)
    assert followed.status_code == 200
    assert followed.url.path == "/simple/demo-pkg/"


def test_etag_and_if_none_match(index: SimpleIndex) -> None:
    url = f"{index.index_url}demo-pkg/"
    first = httpx.get(url, headers={"Accept": JSON_V1})
    etag = first.headers["etag"]
    assert etag.startswith('"') and not etag.startswith("W/")
    again = httpx.get(url, headers={"Accept": JSON_V1, "If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    html_page = httpx.get(url, headers={"If-None-Match": etag})
    assert html_page.status_code == 200  # a different representation, a different tag
    assert html_page.headers["etag"] != etag
    stale = httpx.get(url, headers={"Accept": JSON_V1, "If-None-Match": '"stale"'})
    assert stale.status_code == 200


def test_file_download_and_pep658_metadata(index: SimpleIndex, dist_dir: Path) -> None:
    for name in (WHEEL_1, SDIST_1, WHEEL_2):
        resp = httpx.get(f"{index.url}/files/{name}")
        assert resp.status_code == 200
        assert hashlib.sha256(resp.content).hexdigest() == sha256_file(dist_dir / name)
    meta = httpx.get(f"{index.url}/files/{WHEEL_2}.metadata")
    assert meta.status_code == 200
    assert meta.content == wheel_metadata(dist_dir / WHEEL_2)
    assert httpx.get(f"{index.url}/files/{SDIST_1}.metadata").status_code == 404
    assert httpx.get(f"{index.url}/files/missing-1.0-py3-none-any.whl").status_code == 404


def test_corrupt_changes_bytes_but_not_the_advertised_hash(
    index: SimpleIndex, dist_dir: Path
) -> None:
    true_hash = sha256_file(dist_dir / WHEEL_1)
    index.corrupt.add(WHEEL_1)
    body = httpx.get(f"{index.url}/files/{WHEEL_1}").content
    assert len(body) == (dist_dir / WHEEL_1).stat().st_size
    assert hashlib.sha256(body).hexdigest() != true_hash
    doc = httpx.get(f"{index.index_url}demo-pkg/", headers={"Accept": JSON_V1}).json()
    advertised = {f["filename"]: f["hashes"]["sha256"] for f in doc["files"]}
    assert advertised[WHEEL_1] == true_hash
    # Metadata files are corrupted only when named themselves.
    meta = httpx.get(f"{index.url}/files/{WHEEL_1}.metadata").content
    assert meta == wheel_metadata(dist_dir / WHEEL_1)
    index.corrupt.add(f"{WHEEL_1}.metadata")
    assert httpx.get(f"{index.url}/files/{WHEEL_1}.metadata").content != meta


def test_down_and_required_auth(index: SimpleIndex) -> None:
    index.down = True
    for path in ("/simple/", "/simple/demo-pkg/", f"/files/{WHEEL_1}"):
        assert httpx.get(f"{index.url}{path}").status_code == 503
    index.down = False
    index.required_auth = ("alice", "s3cret")
    denied = httpx.get(f"{index.index_url}demo-pkg/")
    assert denied.status_code == 401
    assert denied.headers["www-authenticate"].startswith("Basic")
    assert httpx.get(f"{index.url}/files/{WHEEL_1}").status_code == 401
    wrong = httpx.get(f"{index.index_url}demo-pkg/", auth=("alice", "nope"))
    assert wrong.status_code == 401
    assert httpx.get(f"{index.index_url}demo-pkg/", auth=("alice", "s3cret")).status_code == 200
    assert httpx.get(f"{index.url}/files/{WHEEL_1}", auth=("alice", "s3cret")).status_code == 200


def test_yanked_in_both_formats(index: SimpleIndex) -> None:
    index.yanked[WHEEL_2] = "broken build"
    index.yanked[SDIST_1] = ""
    doc = httpx.get(f"{index.index_url}demo-pkg/", headers={"Accept": JSON_V1}).json()
    yanked = {f["filename"]: f["yanked"] for f in doc["files"]}
    assert yanked == {WHEEL_1: False, SDIST_1: True, WHEEL_2: "broken build"}
    links = parse_links(httpx.get(f"{index.index_url}demo-pkg/").text)
    assert links[WHEEL_2]["data-yanked"] == "broken build"
    assert links[SDIST_1]["data-yanked"] == ""
    assert "data-yanked" not in links[WHEEL_1]


def test_request_log_count_and_new_files(tmp_path: Path) -> None:
    with SimpleIndex(tmp_path) as index:
        assert httpx.get(f"{index.index_url}late/").status_code == 404
        make_wheel(tmp_path, "late", "0.1")
        (tmp_path / "README.txt").write_text("not a distribution")
        doc = httpx.get(f"{index.index_url}late/", headers={"Accept": JSON_V1}).json()
        assert [f["filename"] for f in doc["files"]] == ["late-0.1-py3-none-any.whl"]
        httpx.get(f"{index.url}/files/late-0.1-py3-none-any.whl")
        assert index.requests == [
            ("GET", "/simple/late/"),
            ("GET", "/simple/late/"),
            ("GET", "/files/late-0.1-py3-none-any.whl"),
        ]
        assert count(index, "/simple/") == 2
        assert count(index, "/files/") == 1
    # Stopped: nothing listens any more.
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{index.index_url}late/", timeout=2)


def test_delay_holds_file_requests_concurrently(index: SimpleIndex) -> None:
    index.delay = 0.4
    statuses: list[int] = []

    def fetch() -> None:
        statuses.append(httpx.get(f"{index.url}/files/{WHEEL_1}", timeout=10).status_code)

    start = time.monotonic()
    threads = [threading.Thread(target=fetch) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - start
    assert statuses == [200, 200, 200]
    assert 0.4 <= elapsed < 1.1  # slept side by side, not one after another
    assert count(index, "/files/") == 3
    assert httpx.get(f"{index.index_url}demo-pkg/", timeout=10).status_code == 200


# -- real pip ------------------------------------------------------------------------------


def test_pip_installs_from_the_index(index: SimpleIndex, tmp_path: Path) -> None:
    target = tmp_path / "target"
    run_pip(
        "install", "--no-deps", "--index-url", index.index_url, "--target", str(target),
        "demo-pkg==1.0",
    )  # fmt: skip
    init = target / "demo_pkg" / "__init__.py"
    assert init.is_file()
    assert init.read_text() == '__version__ = "1.0"\n'
    assert (target / "demo_pkg-1.0.dist-info" / "METADATA").is_file()
    # pip 26 reads the JSON page, takes the PEP 658 metadata, then the wheel; never the sdist.
    assert ("GET", "/simple/demo-pkg/") in index.requests
    assert ("GET", f"/files/{WHEEL_1}.metadata") in index.requests
    assert ("GET", f"/files/{WHEEL_1}") in index.requests
    assert count(index, f"/files/{SDIST_1}") == 0


def test_pip_download_picks_the_newest_wheel(index: SimpleIndex, tmp_path: Path) -> None:
    dest = tmp_path / "dl"
    run_pip(
        "download", "--no-deps", "--only-binary", ":all:", "-d", str(dest),
        "--index-url", index.index_url, "demo-pkg",
    )  # fmt: skip
    assert [p.name for p in dest.iterdir()] == [WHEEL_2]


def test_pip_reads_an_html_only_index_and_honours_requires_python(
    dist_dir: Path, tmp_path: Path
) -> None:
    root = tmp_path / "root"
    shutil.copytree(dist_dir, root)
    make_wheel(root, "demo-pkg", "3.0", requires_python="<3")  # no Python 3 may pick it
    dest = tmp_path / "dl"
    with SimpleIndex(root) as index:
        index.force_html = True
        run_pip(
            "download", "--no-deps", "--only-binary", ":all:", "-d", str(dest),
            "--index-url", index.index_url, "demo-pkg",
        )  # fmt: skip
        assert count(index, f"/files/{WHEEL_2}.metadata") == 1  # data-core-metadata was read
        assert count(index, "/files/demo_pkg-3.0") == 0
    assert [p.name for p in dest.iterdir()] == [WHEEL_2]
