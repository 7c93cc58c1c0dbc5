"""npm package names: `name` or `@scope/name`, as they appear in URLs and tarball file names.

The ASGI server percent-decodes the request path once, so `@scope%2fname` and `@scope%2Fname`
arrive here as `@scope/name`; nothing here decodes again (`%252f` stays `%2f` and is then an
invalid name, never a path trick).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote

from graft.errors import InvalidInput

# validate-npm-package-name's rules: URL-safe characters, no leading '.' or '_', ≤ 214
# characters. Old registry names may hold capitals; new ones (publish) must be lowercase.
_PART = r"[A-Za-z0-9~-][A-Za-z0-9._~-]*"
_NAME = re.compile(rf"^(?:@({_PART})/)?({_PART})\Z")
MAX_NAME = 214


@dataclass(frozen=True, slots=True)
class PackageName:
    name: str  # "left-pad" or "@scope/pkg"

    @property
    def scope(self) -> str | None:
        return self.name[1:].split("/", 1)[0] if self.name.startswith("@") else None

    @property
    def basename(self) -> str:
        """The name without its scope: what tarball file names start with."""
        return self.name.rsplit("/", 1)[-1]

    @property
    def escaped(self) -> str:
        """As npm writes it in a registry URL: `@scope%2fpkg`."""
        return quote(self.name, safe="@")

    def tarball(self, version: str) -> str:
        return f"{self.basename}-{version}.tgz"

    def version_of(self, filename: str) -> str | None:
        """`pkg-1.2.3.tgz` → `1.2.3` (None if the file name is not this package's)."""
        prefix = f"{self.basename}-"
        if filename.startswith(prefix) and filename.endswith(".tgz"):
            return filename[len(prefix) : -len(".tgz")] or None
        return None

    def __str__(self) -> str:
        return self.name


def parse_name(text: str, *, new: bool = False) -> PackageName:
    """A package name from a URL or a manifest; raises InvalidInput. `new`: the stricter rule
    for names being published (lowercase only)."""
    m = _NAME.match(text)
    if m is None or len(text) > MAX_NAME or text.lower() in ("node_modules", "favicon.ico"):
        raise InvalidInput(f"{text!r} is not a valid npm package name")
    if new and text != text.lower():
        raise InvalidInput(f"{text!r}: new npm package names must be lowercase")
    return PackageName(text)


def catalog_filename(name: PackageName, version: str) -> str:
    """The file name a published tarball is recorded under: unique per organization even for
    two scopes holding the same base name (`@a/x-1.0.0.tgz`, `@b/x-1.0.0.tgz`)."""
    return f"{name.name}-{version}.tgz"
