"""The distribution spec's error codes and their wire form (`{"errors": [...]}`)."""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import Response

from graft.errors import GraftError


class OCIError(GraftError):
    """An error answered with the spec's JSON body; `code` is one of the spec's codes."""

    def __init__(
        self,
        code: str,
        message: str,
        status: int,
        *,
        detail: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.status_code = status
        self.detail = detail
        self.headers = headers or {}


def blob_unknown(digest: str) -> OCIError:
    return OCIError("BLOB_UNKNOWN", f"blob {digest} is not known to this repository", 404)


def blob_upload_unknown(upload: str) -> OCIError:
    return OCIError("BLOB_UPLOAD_UNKNOWN", f"upload {upload} is not known (or finished)", 404)


def blob_upload_invalid(message: str, status: int = 400) -> OCIError:
    return OCIError("BLOB_UPLOAD_INVALID", message, status)


def digest_invalid(message: str) -> OCIError:
    return OCIError("DIGEST_INVALID", message, 400)


def manifest_unknown(name: str, reference: str) -> OCIError:
    return OCIError("MANIFEST_UNKNOWN", f"manifest {name}:{reference} is not known", 404)


def manifest_invalid(message: str) -> OCIError:
    return OCIError("MANIFEST_INVALID", message, 400)


def manifest_blob_unknown(digest: str) -> OCIError:
    return OCIError(
        "MANIFEST_BLOB_UNKNOWN",
        f"the manifest references {digest}, which this repository does not hold",
        400,
        detail={"digest": digest},
    )


def name_invalid(name: str) -> OCIError:
    return OCIError(
        "NAME_INVALID",
        f"invalid repository name {name!r}: use lowercase path components such as "
        "library/python or team/app (letters, digits, '.', '_', '-'), at most 255 characters",
        400,
    )


def name_unknown(name: str) -> OCIError:
    return OCIError("NAME_UNKNOWN", f"repository {name} is not known", 404)


def tag_invalid(tag: str) -> OCIError:
    return OCIError(
        "MANIFEST_INVALID",
        f"invalid tag {tag!r}: use letters, digits, '_', '.' or '-', at most 128 characters",
        400,
    )


def size_invalid(message: str, status: int = 400) -> OCIError:
    return OCIError("SIZE_INVALID", message, status)


def unsupported(message: str, status: int = 405) -> OCIError:
    return OCIError("UNSUPPORTED", message, status)


def denied(message: str) -> OCIError:
    return OCIError("DENIED", message, 403)


def unauthorized(message: str, challenge: str) -> OCIError:
    return OCIError("UNAUTHORIZED", message, 401, headers={"WWW-Authenticate": challenge})


_CODES = {
    400: "UNSUPPORTED",
    401: "UNAUTHORIZED",
    403: "DENIED",
    404: "NAME_UNKNOWN",
    413: "SIZE_INVALID",
    429: "TOOMANYREQUESTS",
}


def error_response(exc: GraftError, *, head: bool = False) -> Response:
    """Any GraftError as the spec's JSON error; a HEAD answer carries no body."""
    if isinstance(exc, OCIError):
        code, headers, detail = exc.code, dict(exc.headers), exc.detail
    else:
        code, headers, detail = _CODES.get(exc.status_code, "UNSUPPORTED"), {}, None
        if exc.status_code >= 500:
            code = "UNAVAILABLE"
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            headers["Retry-After"] = str(retry_after)
    error: dict[str, Any] = {"code": code, "message": exc.message}
    if detail is not None:
        error["detail"] = detail
    headers["Docker-Distribution-API-Version"] = "registry/2.0"
    if head:
        headers["Content-Type"] = "application/json"
        return Response(status_code=exc.status_code, headers=headers)
    body = json.dumps({"errors": [error]}).encode()
    return Response(
        body, status_code=exc.status_code, media_type="application/json", headers=headers
    )
