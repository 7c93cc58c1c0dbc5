"""Reading a deployed POM: its coordinates (with groupId/version inherited from `<parent>`, and
`${…}` references resolved from the POM's own properties) and Graft's own properties.

A POM declares the advisories a patched build fixes in a property, so the declaration travels
with the artifact and `mvn deploy` needs nothing else:

    <properties>
      <graft.fixes>CVE-2021-44228, CVE-2021-45046</graft.fixes>
    </properties>

XML is parsed with defusedxml (no DTDs, no entities): a POM is untrusted input.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from graft.errors import InvalidInput

MAX_BYTES = 8 << 20
FIXES_PROPERTY = "graft.fixes"
_REFERENCE = re.compile(r"\$\{([^}]+)\}")


@dataclass(frozen=True, slots=True)
class Pom:
    group_id: str
    artifact_id: str
    version: str
    packaging: str
    properties: dict[str, str]

    @property
    def fixes(self) -> list[str]:
        raw = self.properties.get(FIXES_PROPERTY, "")
        return [item for item in re.split(r"[\s,]+", raw) if item]


def _local(tag: object) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _child_text(el: ET.Element | None, name: str) -> str:
    if el is None:
        return ""
    for c in el:
        if _local(c.tag) == name:
            return (c.text or "").strip()
    return ""


def parse(data: bytes) -> Pom:
    """Parse and resolve a POM; raises InvalidInput (422) with the reason."""
    if len(data) > MAX_BYTES:
        raise InvalidInput(f"the POM is larger than {MAX_BYTES >> 20} MiB")
    try:
        root = fromstring(data, forbid_dtd=True)
    except (ET.ParseError, DefusedXmlException, ValueError) as exc:
        raise InvalidInput(f"the POM does not parse as XML: {exc}") from None
    if _local(root.tag) != "project":
        raise InvalidInput(f"the POM's root element is <{_local(root.tag)}>, not <project>")
    parent = next((c for c in root if _local(c.tag) == "parent"), None)
    properties: dict[str, str] = {}
    props = next((c for c in root if _local(c.tag) == "properties"), None)
    if props is not None:
        for p in props:
            if isinstance(p.tag, str):
                properties[_local(p.tag)] = (p.text or "").strip()
    group_id = _child_text(root, "groupId") or _child_text(parent, "groupId")
    version = _child_text(root, "version") or _child_text(parent, "version")
    artifact_id = _child_text(root, "artifactId")
    packaging = _child_text(root, "packaging") or "jar"
    builtins = {
        "project.groupId": group_id,
        "pom.groupId": group_id,
        "project.artifactId": artifact_id,
        "project.version": version,
        "pom.version": version,
        "project.parent.version": _child_text(parent, "version"),
        "project.parent.groupId": _child_text(parent, "groupId"),
    }

    def resolve(value: str, what: str) -> str:
        for _ in range(10):  # properties may refer to properties
            if "${" not in value:
                return value
            value = _REFERENCE.sub(
                lambda m: properties.get(m.group(1), builtins.get(m.group(1), m.group(0))), value
            )
        raise InvalidInput(
            f"the POM's {what} {value!r} refers to a property it does not define; "
            "deploy a resolved POM (e.g. with flatten-maven-plugin)"
        )

    group_id = resolve(group_id, "groupId")
    builtins["project.groupId"] = group_id
    version = resolve(version, "version")
    builtins["project.version"] = version
    artifact_id = resolve(artifact_id, "artifactId")
    for name, what in ((group_id, "groupId"), (artifact_id, "artifactId"), (version, "version")):
        if not name:
            raise InvalidInput(f"the POM has no {what}")
    if FIXES_PROPERTY in properties:  # other properties may name things only a build knows
        properties[FIXES_PROPERTY] = resolve(properties[FIXES_PROPERTY], FIXES_PROPERTY)
    return Pom(group_id, artifact_id, version, resolve(packaging, "packaging"), properties)
