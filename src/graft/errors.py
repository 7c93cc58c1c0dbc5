"""Errors the core raises on purpose; each maps to one HTTP status and a CLI message."""

from __future__ import annotations


class GraftError(Exception):
    status_code = 400
    code = "bad_request"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(GraftError):
    status_code = 422
    code = "invalid"


class NotFound(GraftError):
    status_code = 404
    code = "not_found"


class Conflict(GraftError):
    status_code = 409
    code = "conflict"


class Unauthorized(GraftError):
    status_code = 401
    code = "unauthorized"

    def __init__(self, message: str, challenge: str | None = None) -> None:
        super().__init__(message)
        #: WWW-Authenticate value; None means the route's default (Basic realm="graft")
        self.challenge = challenge


class Forbidden(GraftError):
    status_code = 403
    code = "forbidden"


class TooManyRequests(GraftError):
    status_code = 429
    code = "too_many_requests"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PayloadTooLarge(GraftError):
    status_code = 413
    code = "too_large"
