"""Names, references and media types of the OCI distribution spec 1.1."""

from __future__ import annotations

import re

from graft.blobs import ALGORITHMS, InvalidDigest, split_digest

# The spec's grammar for <name> (path components joined by "/") and <reference> as a tag.
_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
NAME_RE = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
TAG_RE = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")
MAX_NAME = 255  # distribution and most clients limit the whole name to 255 characters

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_TYPES = (OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST)
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
#: what Graft asks an upstream for, best first
ACCEPT = ", ".join(MANIFEST_TYPES)


def valid_name(name: str) -> bool:
    return len(name) <= MAX_NAME and NAME_RE.fullmatch(name) is not None


def valid_tag(tag: str) -> bool:
    return TAG_RE.fullmatch(tag) is not None


def is_digest(reference: str) -> bool:
    return ":" in reference


def valid_digest(digest: str) -> bool:
    try:
        split_digest(digest)
    except InvalidDigest:
        return False
    return True


def known_algorithm(digest: str) -> bool:
    return digest.split(":", 1)[0] in ALGORITHMS


def base_media_type(content_type: str | None) -> str:
    """`application/x; charset=utf-8` → `application/x`."""
    return (content_type or "").split(";", 1)[0].strip().lower()
