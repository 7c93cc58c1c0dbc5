"""Reading a pushed or pulled manifest: what it is, what it points at, what it says of itself.

The bytes are never re-serialised: they are stored and served exactly as they came, under the
digest of those bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from graft.ecosystems.oci import errors
from graft.ecosystems.oci.names import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    INDEX_TYPES,
    MANIFEST_TYPES,
    OCI_INDEX,
    OCI_MANIFEST,
    valid_digest,
)

MAX_MANIFEST_BYTES = 4 << 20  # the spec asks registries to take at least 4 MiB

# Layers a registry is not expected to hold (Windows base layers and the like).
_FOREIGN = (
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
)


@dataclass(frozen=True, slots=True)
class Descriptor:
    media_type: str
    digest: str
    size: int


@dataclass(frozen=True, slots=True)
class ParsedManifest:
    media_type: str
    #: blobs the manifest needs in the same repository (config and distributable layers)
    blobs: tuple[Descriptor, ...]
    #: manifests an index lists
    manifests: tuple[Descriptor, ...]
    subject: str | None
    artifact_type: str | None
    annotations: dict[str, str] | None = field(default=None)

    @property
    def references(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(d.digest for d in (*self.blobs, *self.manifests)))


def _descriptor(raw: Any, where: str) -> Descriptor:
    if not isinstance(raw, dict):
        raise errors.manifest_invalid(f"{where} is not a descriptor object")
    digest, size, media_type = raw.get("digest"), raw.get("size"), raw.get("mediaType")
    if not isinstance(digest, str) or not valid_digest(digest):
        raise errors.manifest_invalid(f"{where} has an invalid digest {digest!r}")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise errors.manifest_invalid(f"{where} has an invalid size {size!r}")
    if not isinstance(media_type, str) or not media_type:
        raise errors.manifest_invalid(f"{where} has no mediaType")
    return Descriptor(media_type, digest, size)


def parse(body: bytes, content_type: str) -> ParsedManifest:
    """Validate a manifest pushed with `content_type` (raises the spec's OCIError)."""
    if len(body) > MAX_MANIFEST_BYTES:
        raise errors.size_invalid(
            f"manifest of {len(body)} bytes exceeds the limit of {MAX_MANIFEST_BYTES}", 413
        )
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise errors.manifest_invalid(f"manifest is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise errors.manifest_invalid("manifest is not a JSON object")
    declared = doc.get("mediaType")
    media_type = content_type or (declared if isinstance(declared, str) else "")
    if media_type not in MANIFEST_TYPES:
        raise errors.manifest_invalid(
            f"unsupported manifest media type {media_type or '(none)'!r}: use one of "
            + ", ".join(MANIFEST_TYPES)
        )
    if declared is not None and declared != media_type:
        raise errors.manifest_invalid(
            f"the manifest says mediaType {declared!r} but was sent as {media_type!r}"
        )
    if doc.get("schemaVersion") != 2:
        raise errors.manifest_invalid("schemaVersion must be 2")
    blobs: list[Descriptor] = []
    manifests: list[Descriptor] = []
    if media_type in INDEX_TYPES:
        items = doc.get("manifests")
        if not isinstance(items, list):
            raise errors.manifest_invalid("an index needs a manifests list")
        manifests = [_descriptor(m, f"manifests[{i}]") for i, m in enumerate(items)]
    else:
        config = _descriptor(doc.get("config"), "config")
        layers = doc.get("layers")
        if not isinstance(layers, list):
            raise errors.manifest_invalid("an image manifest needs a layers list")
        blobs.append(config)
        for i, raw in enumerate(layers):
            layer = _descriptor(raw, f"layers[{i}]")
            if layer.media_type not in _FOREIGN:
                blobs.append(layer)
    subject = None
    if "subject" in doc and media_type in (OCI_MANIFEST, OCI_INDEX):
        subject = _descriptor(doc["subject"], "subject").digest
    artifact_type = doc.get("artifactType")
    if artifact_type is not None and not isinstance(artifact_type, str):
        raise errors.manifest_invalid("artifactType must be a string")
    if artifact_type is None and media_type == OCI_MANIFEST:
        # The referrers API reports the config's media type when artifactType is absent.
        artifact_type = blobs[0].media_type
    annotations = doc.get("annotations")
    if annotations is not None and not (
        isinstance(annotations, dict) and all(isinstance(v, str) for v in annotations.values())
    ):
        raise errors.manifest_invalid("annotations must map strings to strings")
    return ParsedManifest(
        media_type=media_type,
        blobs=tuple(blobs),
        manifests=tuple(manifests),
        subject=subject,
        artifact_type=artifact_type,
        annotations=annotations or None,
    )


def sniff_media_type(body: bytes) -> str | None:
    """The media type of an upstream manifest whose Content-Type is missing or generic."""
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(doc, dict):
        return None
    declared = doc.get("mediaType")
    if isinstance(declared, str) and declared in MANIFEST_TYPES:
        return declared
    if "manifests" in doc:
        return OCI_INDEX
    if "layers" in doc:
        return OCI_MANIFEST
    return None


__all__ = [
    "DOCKER_LIST",
    "DOCKER_MANIFEST",
    "MAX_MANIFEST_BYTES",
    "Descriptor",
    "ParsedManifest",
    "parse",
    "sniff_media_type",
]
