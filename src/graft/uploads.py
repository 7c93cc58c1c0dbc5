"""Receiving a package upload: the multipart form, with its file part spooled to a temporary
file under the data directory (removed afterwards whatever happens)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request

from graft.errors import InvalidInput


@contextlib.asynccontextmanager
async def spooled_upload(
    request: Request, data_dir: Path, part: str, what: str
) -> AsyncIterator[tuple[FormData, Path, str]]:
    """Yields (form, path of the uploaded file, the file name the client gave)."""
    async with request.form(max_files=2, max_fields=200, max_part_size=1 << 20) as form:
        content = form.get(part)
        if not isinstance(content, UploadFile) or not content.filename:
            raise InvalidInput(f"the upload has no '{part}' part with {what}")
        fd, tmp = tempfile.mkstemp(prefix="upload-", dir=data_dir)
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := await content.read(1 << 20):
                    out.write(chunk)
            yield form, Path(tmp), content.filename
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)


def form_flag(value: object) -> bool:
    """A checkbox-like form field: 1, true, yes or on."""
    return isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "on")
