"""The web app's stylesheet and script, read once from the package and served with an ETag;
pages link them with a content hash (`?v=`), so a browser may keep them for a day."""

from __future__ import annotations

import hashlib
from importlib import resources

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}


class StaticFiles:
    def __init__(self) -> None:
        self.files: dict[str, tuple[bytes, str, str]] = {}  # name -> body, type, etag
        for item in resources.files("graft.web").joinpath("static").iterdir():
            suffix = item.name[item.name.rfind(".") :]
            if suffix in TYPES:
                body = item.read_bytes()
                etag = hashlib.sha256(body).hexdigest()[:16]
                self.files[item.name] = (body, TYPES[suffix], etag)

    def url(self, name: str) -> str:
        return f"/ui/static/{name}?v={self.files[name][2]}"

    async def serve(self, request: Request) -> Response:
        found = self.files.get(request.path_params["name"])
        if found is None:
            return PlainTextResponse("not found\n", status_code=404)
        body, media_type, etag = found
        headers = {
            "ETag": f'"{etag}"',
            "Cache-Control": "public, max-age=86400",
            "X-Content-Type-Options": "nosniff",
        }
        if request.headers.get("if-none-match") == f'"{etag}"':
            return Response(status_code=304, headers=headers)
        return Response(body, media_type=media_type, headers=headers)
