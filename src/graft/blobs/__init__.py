"""Content-addressed (sha256) blob storage."""

from .base import (
    ALGORITHM,
    BlobError,
    BlobNotFound,
    BlobStore,
    BlobTooLarge,
    BlobWriter,
    DigestMismatch,
    InvalidDigest,
    InvalidRange,
    LocalFile,
    check_range,
    parse_digest,
    sha256_digest,
)
from .filesystem import FilesystemBlobStore, FilesystemBlobWriter

__all__ = [
    "ALGORITHM",
    "BlobError",
    "BlobNotFound",
    "BlobStore",
    "BlobTooLarge",
    "BlobWriter",
    "DigestMismatch",
    "FilesystemBlobStore",
    "FilesystemBlobWriter",
    "InvalidDigest",
    "InvalidRange",
    "LocalFile",
    "check_range",
    "parse_digest",
    "sha256_digest",
]
