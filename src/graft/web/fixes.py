"""The "get the fixed package" panel: the command that installs an organization's patched
build, and the file lines that pin it, in each ecosystem's own words."""

from __future__ import annotations

import json


def pin_snippets(
    ecosystem: str, package: str, version: str, command: str | None, prefix: str
) -> list[tuple[str, str]]:
    """(title, text) pairs, most direct first."""
    out: list[tuple[str, str]] = []
    if command:
        out.append(("Command", command))
    if ecosystem == "pypi":
        out.append(("requirements.txt", f"{package}=={version}\n"))
    elif ecosystem == "npm":
        out.append(
            (
                "package.json (pins it for transitive dependencies too)",
                json.dumps({"overrides": {package: version}}, indent=2) + "\n",
            )
        )
    elif ecosystem == "maven" and ":" in package:
        group, artifact = package.split(":", 1)
        out.append(
            (
                "pom.xml",
                f"<dependency>\n  <groupId>{group}</groupId>\n  <artifactId>{artifact}"
                f"</artifactId>\n  <version>{version}</version>\n</dependency>\n",
            )
        )
    elif ecosystem in ("debian", "ubuntu"):
        out.append(("Dockerfile", f"RUN apt-get update && apt-get install -y {prefix}{package}\n"))
    elif ecosystem == "alpine":
        out.append(("Dockerfile", f"RUN apk add --no-cache {prefix}{package}\n"))
    return out
