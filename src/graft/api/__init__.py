"""The management API under /api (FastAPI, OpenAPI document at /api/openapi.json)."""

from graft.api.app import create_api

__all__ = ["create_api"]
