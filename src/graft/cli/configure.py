"""`graft configure CLIENT`: the exact client configuration for a Graft server."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated
from urllib.parse import urlsplit

import typer

from graft.cli.app import app
from graft.cli.common import fail


class Client(StrEnum):
    pip = "pip"
    uv = "uv"
    poetry = "poetry"
    twine = "twine"


def _snippets(client: Client, base: str, token: str) -> str:
    host = urlsplit(base).hostname or "graft.example.com"
    simple = f"{base}/pypi/simple/"
    legacy = f"{base}/pypi/legacy/"
    netrc = f"machine {host} login rootio password {token}"
    if client is Client.pip:
        return f"""\
# ~/.netrc (chmod 600): pip sends these credentials to {host}
{netrc}

# pip.conf (~/.config/pip/pip.conf, or /etc/pip.conf)
[global]
index-url = {simple}

# or, for one command / in CI:
#   PIP_INDEX_URL={simple} pip install -r requirements.txt
#   pip install --index-url https://rootio:{token}@{host}{urlsplit(simple).path} ...
# check the token: curl -u rootio:{token} {base}/api/whoami
"""
    if client is Client.uv:
        return f"""\
# uv.toml (~/.config/uv/uv.toml) or [tool.uv] in pyproject.toml
[[index]]
name = "graft"
url = "{simple}"
default = true

# credentials: the ~/.netrc line below, or environment variables
#   UV_INDEX_GRAFT_USERNAME=rootio UV_INDEX_GRAFT_PASSWORD={token}
{netrc}
"""
    if client is Client.poetry:
        return f"""\
poetry source add --priority=primary graft {simple}
poetry config http-basic.graft rootio {token}
# publishing patched or private builds:
poetry config repositories.graft-upload {legacy}
poetry config http-basic.graft-upload __token__ {token}
poetry publish --repository graft-upload
"""
    return f"""\
# ~/.pypirc
[distutils]
index-servers = graft

[graft]
repository = {legacy}
username = __token__
password = {token}

# twine upload --repository graft dist/*
"""


@app.command()
def configure(
    client: Annotated[Client, typer.Argument(help="pip, uv, poetry or twine.")],
    url: Annotated[
        str, typer.Option(help="Graft's URL as clients reach it.", envvar="GRAFT_URL")
    ] = "http://127.0.0.1:8000",
    token: Annotated[
        str, typer.Option(help="Token to put in the snippets (default: a placeholder).")
    ] = "$GRAFT_TOKEN",
) -> None:
    """Print the configuration a client needs to install from (or publish to) Graft."""
    base = url.rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise fail(f"--url must be an http(s) URL, not {url!r}", 2)
    print(_snippets(client, base, token), end="")
