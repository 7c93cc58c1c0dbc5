"""Patched builds and private packages: what each organization published, per ecosystem."""

from graft.catalog.service import CatalogFile, CatalogService

__all__ = ["CatalogFile", "CatalogService"]
