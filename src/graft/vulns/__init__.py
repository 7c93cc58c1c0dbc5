"""Advisories (OSV import, matching with each ecosystem's version order), the status of each
library entry, package requests, remediation and Graft's own OSV feed."""

from graft.vulns.models import LibraryQuery
from graft.vulns.schemes import VersionAware, VersionScheme, collect
from graft.vulns.service import VulnService

__all__ = ["LibraryQuery", "VersionAware", "VersionScheme", "VulnService", "collect"]
