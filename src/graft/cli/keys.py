"""`graft key show|rotate|import`: the signing keys of the OS package repositories."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from graft.cli.app import app
from graft.cli.common import JsonOpt, emit_json, fail, out, parse_duration, settings, table, when

if TYPE_CHECKING:
    from graft.ecosystems.apt.signing import KeyState

# graft.ecosystems.apt is imported inside the commands: importing it at start-up would import
# prometheus_client before `graft serve` sets PROMETHEUS_MULTIPROC_DIR (graft.runner).

key_app = typer.Typer(
    help="Signing keys: create them all (init); the APT archive key: show, rotate with an "
    "overlap, import.",
    no_args_is_help=True,
)
app.add_typer(key_app, name="key")


class Repo(StrEnum):
    apt = "apt"


OverlapOpt = Annotated[
    str,
    typer.Option(
        help="How long the previous key keeps signing alongside the new one (and stays in the "
        "published keyring), so clients can fetch the new keyring: e.g. 30d, 12h; 0 = stop "
        "at once.",
    ),
]


def _show(state: KeyState, as_json: bool) -> None:
    rows = [("current", state.current.fingerprint, "-")]
    if state.retiring is not None:
        ended = state.retiring_until is None or state.retiring_until <= dt.datetime.now(dt.UTC)
        label = "previous (no longer signs)" if ended else "retiring"
        rows.append((label, state.retiring.fingerprint, when(state.retiring_until)))
    if as_json:
        emit_json(
            {
                "current": state.current.fingerprint,
                "retiring": state.retiring.fingerprint if state.retiring else None,
                "retiring_until": state.retiring_until.isoformat()
                if state.retiring_until
                else None,
            }
        )
        return
    table("APT archive keys", ["key", "fingerprint", "signs until"], rows)
    out.print("Clients fetch the keyring from /keys/graft-archive-keyring.gpg (both keys while "
              "one retires).")  # fmt: skip


@key_app.command("show")
def show(as_json: JsonOpt = False) -> None:
    """The APT archive keys: the current one and, during an overlap, the retiring one."""
    from graft.ecosystems.apt.signing import load_state

    _show(load_state(settings().keys_dir), as_json)


@key_app.command("rotate")
def rotate(repo: Repo, overlap: OverlapOpt = "30d", as_json: JsonOpt = False) -> None:
    """Create a new signing key; the old one keeps signing alongside it for --overlap."""
    from graft.ecosystems.apt.signing import ArchiveKey, install_key

    cfg = settings()
    state = install_key(
        cfg.keys_dir, ArchiveKey.generate(), parse_duration(overlap, allow_zero=True)
    )
    _show(state, as_json)


@key_app.command("import")
def import_key(
    repo: Repo,
    file: Annotated[Path, typer.Argument(help="An OpenPGP secret key (binary or armored).")],
    overlap: OverlapOpt = "30d",
    as_json: JsonOpt = False,
) -> None:
    """Sign with an existing OpenPGP key from now on; the old one overlaps for --overlap."""
    from graft.ecosystems.apt.signing import ArchiveKey, install_key

    cfg = settings()
    try:
        key = ArchiveKey.from_bytes(file.read_bytes())
        state = install_key(cfg.keys_dir, key, parse_duration(overlap, allow_zero=True))
    except OSError as exc:
        raise fail(f"cannot read {file}: {exc.strerror}") from None
    except ValueError as exc:
        raise fail(str(exc)) from None
    _show(state, as_json)


@key_app.command("init")
def init_keys() -> None:
    """Create every key a server signs with (APT, APK, registry tokens, download links) in
    the keys directory, keeping those that exist: run it once, then give the same directory
    to every replica (e.g. `kubectl create secret generic graft-keys --from-file=DIR`)."""
    from graft.blobs.urls import load_or_create_key as blob_url_key
    from graft.ecosystems.apk.keys import ApkKey
    from graft.ecosystems.oci.tokens import load_or_create_key as registry_key

    keys_dir = settings().keys_dir
    fingerprint = ensure_keys(keys_dir)
    apk = ApkKey.load_or_create(keys_dir)
    registry_key(keys_dir)
    blob_url_key(keys_dir)
    out.print(f"Keys in {keys_dir}:")
    out.print(f"  APT archive key {fingerprint}")
    out.print(f"  APK signing key {apk.key_name}")
    out.print("  registry token key, download link key")
    for path in sorted(keys_dir.iterdir()):
        if path.is_file() and not path.name.startswith("."):
            print(f"  {path.name}")


def ensure_keys(keys_dir: Path) -> str:
    """The APT archive key, created if missing (by `graft init`); its fingerprint."""
    from graft.ecosystems.apt.signing import load_state

    return load_state(keys_dir).current.fingerprint
