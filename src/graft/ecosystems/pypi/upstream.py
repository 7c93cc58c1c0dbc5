"""Reading upstream simple indexes: PEP 691 JSON preferred, PEP 503 HTML accepted."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from urllib.parse import urldefrag, urljoin

from graft.ecosystems.pypi.dists import parse_filename
from graft.ecosystems.pypi.project import DistFile
from graft.errors import InvalidInput
from graft.upstream.pages import Page, UpstreamUnavailable

ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, "
    "text/html;q=0.01"
)


def _version(filename: str) -> str | None:
    try:
        return str(parse_filename(filename).version)
    except InvalidInput:
        return None  # not a distribution we understand (e.g. .exe, .egg): not offered


def _metadata_hash(value: object) -> str | None:
    if value is True:
        return ""
    if isinstance(value, dict) and isinstance(value.get("sha256"), str):
        return str(value["sha256"]).lower()
    return None


def parse_json(page: Page) -> list[DistFile]:
    try:
        doc = json.loads(page.body)
        files = doc["files"]
    except (ValueError, KeyError, TypeError):
        raise UpstreamUnavailable(f"upstream page {page.url} is not valid PEP 691 JSON") from None
    out = []
    for entry in files:
        if not isinstance(entry, dict) or not isinstance(entry.get("filename"), str):
            continue
        version = _version(entry["filename"])
        if version is None:
            continue
        hashes = entry.get("hashes") or {}
        meta = entry.get("core-metadata", entry.get("dist-info-metadata"))
        size = entry.get("size")
        out.append(
            DistFile(
                filename=entry["filename"],
                version=version,
                source="upstream",
                sha256=str(hashes["sha256"]).lower() if hashes.get("sha256") else None,
                url=urljoin(page.url, str(entry.get("url", ""))),
                requires_python=entry.get("requires-python") or None,
                yanked=entry.get("yanked", False) or False,
                size=size if isinstance(size, int) else None,
                upload_time=entry.get("upload-time") or None,
                metadata_sha256=_metadata_hash(meta),
            )
        )
    return out


class _Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.anchors: list[tuple[dict[str, str | None], str]] = []
        self._current: dict[str, str | None] | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._current, self._text = dict(attrs), []

    def handle_data(self, data: str) -> None:
        if self._current is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._current is not None:
            self.anchors.append((self._current, "".join(self._text).strip()))
            self._current = None


def parse_html(page: Page) -> list[DistFile]:
    parser = _Anchors()
    parser.feed(page.body.decode("utf-8", errors="replace"))
    out = []
    for attrs, text in parser.anchors:
        href = attrs.get("href")
        if not href:
            continue
        url, fragment = urldefrag(urljoin(page.url, href))
        filename = text or url.rsplit("/", 1)[-1]
        version = _version(filename)
        if version is None:
            continue
        algo, _, digest = fragment.partition("=")
        meta = attrs.get("data-core-metadata", attrs.get("data-dist-info-metadata"))
        meta_hash: str | None = None
        if meta is not None:
            m_algo, _, m_digest = meta.partition("=")
            meta_hash = m_digest.lower() if m_algo == "sha256" else ""
        yanked = attrs.get("data-yanked")
        out.append(
            DistFile(
                filename=filename,
                version=version,
                source="upstream",
                sha256=digest.lower() if algo == "sha256" and digest else None,
                url=url,
                requires_python=attrs.get("data-requires-python") or None,
                yanked=(yanked or True) if yanked is not None else False,
                metadata_sha256=meta_hash,
            )
        )
    return out


def parse_page(page: Page) -> list[DistFile]:
    if "json" in page.content_type:
        return parse_json(page)
    return parse_html(page)


def parse_project_list(page: Page) -> list[str]:
    """Project names from an upstream root page (`/simple/`)."""
    if "json" in page.content_type:
        try:
            return [p["name"] for p in json.loads(page.body)["projects"]]
        except (ValueError, KeyError, TypeError):
            raise UpstreamUnavailable(f"upstream page {page.url} is not valid JSON") from None
    parser = _Anchors()
    parser.feed(page.body.decode("utf-8", errors="replace"))
    return [text for _attrs, text in parser.anchors if text]
