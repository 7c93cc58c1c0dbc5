"""Content-addressed (sha256, or sha512 where asked) blob storage."""

from .base import (
    ALGORITHM,
    ALGORITHMS,
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
    digest_of,
    parse_digest,
    sha256_digest,
    split_digest,
)
from .filesystem import FilesystemBlobStore, FilesystemBlobWriter

__all__ = [
    "ALGORITHM",
    "ALGORITHMS",
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
    "digest_of",
    "parse_digest",
    "sha256_digest",
    "split_digest",
]
