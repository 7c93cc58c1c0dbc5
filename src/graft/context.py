"""Everything a request handler needs, built once per process by `graft.server`."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx
from starlette.requests import HTTPConnection

from graft import __version__
from graft.accounts.auth import Authenticator
from graft.accounts.models import Principal
from graft.accounts.scopes import Scope
from graft.accounts.service import AccountService
from graft.blobs import BlobStore, FilesystemBlobStore
from graft.blobs.urls import BlobUrlSigner, load_or_create_key
from graft.catalog import CatalogService
from graft.cluster import Cluster
from graft.db import Database
from graft.errors import Forbidden, Unauthorized
from graft.responses import BASIC_CHALLENGE
from graft.settings import Settings
from graft.upstream.files import ArtifactFetcher
from graft.upstream.pages import PageCache
from graft.upstream.registry import UpstreamRegistry
from graft.usage import UsageRecorder
from graft.vulns.service import VulnService

log = logging.getLogger("graft")
PRINCIPAL_KEY = "graft.principal"


def make_blob_store(settings: Settings, signer: BlobUrlSigner | None = None) -> BlobStore:
    """The configured blob store (the S3 client library is imported only when used)."""
    if settings.blob_store == "s3":
        try:
            from graft.blobs.s3 import S3BlobStore
        except ImportError as exc:  # pragma: no cover - depends on the installation
            raise RuntimeError(
                "blob_store = 's3' needs the S3 client: pip install 'graft[s3]'"
            ) from exc

        assert settings.s3_bucket is not None  # checked by the settings
        key, secret = settings.s3_access_key_id, settings.s3_secret_access_key
        return S3BlobStore(
            settings.s3_bucket,
            prefix=settings.s3_prefix,
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
            access_key_id=key.get_secret_value() if key else None,
            secret_access_key=secret.get_secret_value() if secret else None,
            addressing_style=settings.s3_addressing_style,
            part_bytes=settings.s3_part_bytes,
            presign=settings.s3_presign,
            presign_endpoint_url=settings.s3_presign_endpoint_url,
            redirect_min_bytes=settings.blob_redirect_min_bytes,
            url_ttl_seconds=settings.blob_url_ttl_seconds,
        )
    return FilesystemBlobStore(
        settings.effective_blob_dir,
        url_signer=signer,
        redirect_min_bytes=settings.blob_redirect_min_bytes,
    )


@dataclass
class AppContext:
    settings: Settings
    db: Database
    blobs: BlobStore
    accounts: AccountService
    auth: Authenticator
    usage: UsageRecorder
    http: httpx.AsyncClient
    upstreams: UpstreamRegistry
    pages: PageCache
    fetcher: ArtifactFetcher
    catalog: CatalogService
    #: what replicas agree on: invalidation messages and cluster-wide locks
    cluster: Cluster
    vulns: VulnService
    #: background jobs an ecosystem registers (see `add_periodic`): [interval, last run, job]
    periodic: list[tuple[float, list[float], Callable[[], Awaitable[object]]]] = field(
        default_factory=list
    )

    def add_periodic(self, every_seconds: float, job: Callable[[], Awaitable[object]]) -> None:
        """Run `job` about every `every_seconds` from the housekeeping task (errors logged)."""
        self.periodic.append((every_seconds, [time.monotonic()], job))

    @classmethod
    def build(cls, settings: Settings) -> AppContext:
        db = Database(settings.effective_database_url)
        accounts = AccountService(
            db, default_grace=dt.timedelta(seconds=settings.token_grace_seconds)
        )
        signer = None
        if settings.blob_server_port is not None:
            signer = BlobUrlSigner(
                load_or_create_key(settings.keys_dir),
                port=settings.blob_server_port,
                public_url=settings.blob_server_url,
                ttl=settings.blob_url_ttl_seconds,
            )
        blobs = make_blob_store(settings, signer)
        timeout = settings.upstream_timeout_seconds
        http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
            headers={"User-Agent": f"graft/{__version__}"},
        )
        cluster = Cluster(db)
        catalog = CatalogService(db)
        return cls(
            settings=settings,
            db=db,
            vulns=VulnService(db, catalog),
            blobs=blobs,
            http=http,
            upstreams=UpstreamRegistry(db, settings.upstream),
            pages=PageCache(db, blobs, http),
            fetcher=ArtifactFetcher(
                blobs,
                http,
                buffer_bytes=settings.upstream_buffer_bytes,
                max_bytes=settings.max_upload_bytes,
                db=db,
                lock=cluster.lock,
                lock_wait=timeout,
            ),
            catalog=catalog,
            cluster=cluster,
            accounts=accounts,
            auth=Authenticator(
                accounts.resolve,
                cache_seconds=settings.auth_cache_seconds,
                failure_limit=settings.auth_failure_limit,
                failure_window=settings.auth_failure_window_seconds,
            ),
            usage=UsageRecorder(
                db, flush_seconds=settings.usage_flush_seconds, max_keys=settings.usage_queue_max
            ),
        )

    async def authenticate(
        self, conn: HTTPConnection, scope: Scope = Scope.READ, *, challenge: str = BASIC_CHALLENGE
    ) -> Principal:
        """The request's principal, checked for `scope`; 401 (with `challenge`) or 403 if not.

        Protocol routes call this first; it costs no database query while the token is cached.
        """
        raw = conn.scope
        authorization = None
        for key, value in raw["headers"]:  # no Headers object: this runs on every request
            if key == b"authorization":
                authorization = value.decode("latin-1")
                break
        principal = self.auth.cached(authorization)
        if principal is None:
            client = raw["client"][0] if raw.get("client") else "unknown"
            try:
                principal = await self.auth.authenticate(authorization, client)
            except Unauthorized as exc:
                exc.challenge = exc.challenge or challenge
                raise
        raw[PRINCIPAL_KEY] = principal
        if not principal.allows(scope):
            raise Forbidden(
                f"token lacks the {scope.value!r} scope "
                f"(it has: {', '.join(sorted(s.value for s in principal.scopes))})"
            )
        return principal

    async def start(self) -> None:
        self.cluster.subscribe("tokens", lambda _payload: self.auth.forget())
        self.cluster.subscribe("catalog", self.catalog.on_announced)
        self.cluster.subscribe("upstreams", self.upstreams.on_announced)
        await self.cluster.start()
        await self.upstreams.load()
        await self.usage.start()
        self.add_periodic(self.settings.usage_flush_seconds, self.vulns.refresh)
        self._housekeeping = asyncio.create_task(self._housekeep(), name="housekeeping")

    async def stop(self) -> None:
        task = getattr(self, "_housekeeping", None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.fetcher.close()
        await self.http.aclose()
        await self.usage.stop()
        await self.flush_last_used()
        await self.blobs.close()
        await self.cluster.stop()
        await self.db.dispose()

    async def flush_last_used(self) -> None:
        seen = self.auth.take_last_used()
        try:
            await self.accounts.record_last_used(seen)
        except Exception:
            for token_id, when in seen.items():  # keep them for the next round
                self.auth.last_used.setdefault(token_id, when.timestamp())
            raise

    async def _housekeep(self) -> None:
        """Periodic work kept off the request path: last-used times, stale upload cleanup."""
        last_cleanup = 0.0
        while True:
            await asyncio.sleep(self.settings.usage_flush_seconds)
            try:
                await self.flush_last_used()
                now = time.monotonic()
                if now - last_cleanup > 3600:
                    last_cleanup = now
                    await self.blobs.cleanup_stale_uploads(older_than_seconds=24 * 3600)
            except Exception:
                log.exception("housekeeping failed; will retry")
            for every, last, job in self.periodic:
                if time.monotonic() - last[0] < every:
                    continue
                last[0] = time.monotonic()
                try:
                    await job()
                except Exception:
                    log.exception("periodic job %s failed; will retry", job)
