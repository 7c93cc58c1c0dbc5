"""Talking to an upstream registry: name mapping, its token flow, verified manifest fetches.

- `map_name` picks the upstream (by priority) whose `namespaces` patterns cover a name and says
  what the name is called there (`*=library/*` maps `python` to `library/python`).
- `RegistryClient` sends requests with the upstream's credentials; a `401` with a Bearer
  challenge is answered by fetching a token from the realm (Basic with the configured
  credentials, or anonymous) and retrying once; tokens are reused until they expire.
- Manifests are verified: the digest of the bytes must equal the digest asked for, or the
  `Docker-Content-Digest` the upstream announced for a tag.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from urllib.parse import quote

import httpx
from pydantic import SecretStr

from graft.blobs import digest_of, split_digest
from graft.ecosystems.oci.manifests import sniff_media_type
from graft.ecosystems.oci.names import ACCEPT, MANIFEST_TYPES, base_media_type, valid_name
from graft.errors import GraftError, NotFound
from graft.upstream.config import UpstreamConfig
from graft.upstream.pages import UpstreamUnavailable

_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')
MAX_TAG_PAGES = 50


class UpstreamMismatch(GraftError):
    status_code = 502
    code = "upstream_mismatch"


def _match(pattern: str, name: str) -> str | None:
    """The part of `name` that a pattern's '*' covers ('' for an exact match), or None."""
    if pattern == "*":  # one path component only: the Docker Hub "official image" rule
        return name if "/" not in name else None
    if pattern.endswith("*"):
        prefix = pattern[:-1]
        return name[len(prefix) :] if name.startswith(prefix) and len(name) > len(prefix) else None
    return "" if name == pattern else None


def map_name(upstreams: list[UpstreamConfig], name: str) -> tuple[UpstreamConfig, str] | None:
    """(upstream, remote name) for a local repository name, or None if no upstream serves it."""
    for upstream in upstreams:
        if not upstream.namespaces:
            return upstream, name
        for entry in upstream.namespaces:
            local, _, remote = entry.partition("=")
            remote = remote or local
            rest = _match(local.strip(), name)
            if rest is None:
                continue
            remote = remote.strip()
            mapped = remote[:-1] + rest if remote.endswith("*") else remote
            if valid_name(mapped):
                return upstream, mapped
    return None


@dataclass(frozen=True, slots=True)
class FetchedManifest:
    body: bytes
    media_type: str
    digest: str


class RegistryClient:
    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http
        self._tokens: dict[tuple[str, str], tuple[str, float]] = {}

    @staticmethod
    def url(upstream: UpstreamConfig, path: str) -> str:
        return f"{upstream.url}v2/{path}"

    def _auth(self, upstream: UpstreamConfig, scope: str) -> dict[str, str]:
        cached = self._tokens.get((upstream.name, scope))
        if cached is not None and cached[1] > time.monotonic():
            return {"Authorization": f"Bearer {cached[0]}"}
        return upstream.auth_headers()

    async def _fetch_token(self, upstream: UpstreamConfig, challenge: str, scope: str) -> bool:
        if not challenge.lower().startswith("bearer "):
            return False
        params = dict(_CHALLENGE_PARAM.findall(challenge))
        realm = params.get("realm")
        if not realm:
            return False
        query = {"service": params.get("service", ""), "scope": params.get("scope", scope)}
        r = await self.http.get(realm, params=query, headers=upstream.auth_headers())
        if r.status_code != 200:
            raise UpstreamUnavailable(
                f"upstream {upstream.name} refused a token for {scope} ({r.status_code})"
            )
        doc = r.json()
        token = doc.get("token") or doc.get("access_token")
        if not isinstance(token, str):
            raise UpstreamUnavailable(f"upstream {upstream.name} sent no token")
        lifetime = float(doc.get("expires_in") or 60)
        self._tokens[(upstream.name, scope)] = (token, time.monotonic() + max(lifetime - 10, 5))
        return True

    async def request(
        self,
        upstream: UpstreamConfig,
        method: str,
        remote: str,
        path: str,
        *,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        scope = f"repository:{remote}:pull"
        url = self.url(upstream, f"{remote}/{path}")
        for attempt in range(2):
            try:
                r = await self.http.request(
                    method, url, headers={**(headers or {}), **self._auth(upstream, scope)}
                )
            except httpx.HTTPError as exc:
                raise UpstreamUnavailable(f"upstream {upstream.name} failed: {exc}") from exc
            if r.status_code == 401 and attempt == 0:
                challenge = r.headers.get("www-authenticate", "")
                if await self._fetch_token(upstream, challenge, scope):
                    continue
            return r
        return r

    def with_token(self, upstream: UpstreamConfig, remote: str) -> UpstreamConfig:
        """A copy of the upstream config that sends the current pull token (for blob
        downloads through the shared ArtifactFetcher)."""
        cached = self._tokens.get((upstream.name, f"repository:{remote}:pull"))
        if cached is None or cached[1] <= time.monotonic():
            return upstream
        return upstream.model_copy(update={"token": SecretStr(cached[0])})

    async def manifest(
        self, upstream: UpstreamConfig, remote: str, reference: str, *, head: bool = False
    ) -> FetchedManifest | str:
        """GET (verified FetchedManifest) or HEAD (the announced digest) of a manifest."""
        r = await self.request(
            upstream,
            "HEAD" if head else "GET",
            remote,
            f"manifests/{quote(reference, safe=':')}",
            headers={"Accept": ACCEPT},
        )
        if r.status_code in (404, 410):
            raise NotFound(f"{remote}:{reference} is not in upstream {upstream.name}")
        if r.status_code != 200:
            raise UpstreamUnavailable(
                f"upstream {upstream.name} answered {r.status_code} for {remote}:{reference}"
            )
        announced = r.headers.get("docker-content-digest")
        if head:
            if not announced:
                raise UpstreamUnavailable(f"upstream {upstream.name} sent no digest on HEAD")
            return str(announced)
        body = r.content
        media_type = base_media_type(r.headers.get("content-type"))
        if media_type not in MANIFEST_TYPES:
            media_type = sniff_media_type(body) or media_type
        if ":" in reference:
            algorithm = split_digest(reference)[0]
            digest = digest_of(body, algorithm)
            if digest != reference:
                raise UpstreamMismatch(
                    f"upstream {upstream.name} served {remote}@{reference} with digest {digest}; "
                    "nothing was cached"
                )
        else:
            algorithm = "sha256"
            if announced and ":" in announced and announced.split(":", 1)[0] in ("sha512",):
                algorithm = "sha512"
            digest = digest_of(body, algorithm)
            if announced and announced != digest:
                raise UpstreamMismatch(
                    f"upstream {upstream.name} announced {announced} for {remote}:{reference} "
                    f"but the bytes hash to {digest}; nothing was cached"
                )
        return FetchedManifest(body, media_type, digest)

    async def tags(self, upstream: UpstreamConfig, remote: str) -> list[str]:
        """Every tag of `remote` upstream (following `Link` pages)."""
        tags: list[str] = []
        path = "tags/list"
        for _ in range(MAX_TAG_PAGES):
            r = await self.request(upstream, "GET", remote, path)
            if r.status_code in (404, 410):
                raise NotFound(f"{remote} is not in upstream {upstream.name}")
            if r.status_code != 200:
                raise UpstreamUnavailable(
                    f"upstream {upstream.name} answered {r.status_code} for {remote} tags"
                )
            tags.extend(t for t in (r.json().get("tags") or []) if isinstance(t, str))
            link = r.headers.get("link", "")
            m = re.search(r"<[^>]*/tags/list(\?[^>]*)>", link)
            if not m:
                break
            path = f"tags/list{m.group(1)}"
        return tags
