"""`graft serve|init|config|org|account|token`: running the server and administration.

Administrative commands talk to the configured database directly (they run on the server host,
as `graft init` does); scripts elsewhere use the same operations through `/api`.
"""

from __future__ import annotations

import asyncio
import os
from typing import Annotated

import typer

from graft.accounts.models import NewToken, TokenView
from graft.accounts.scopes import parse_scopes
from graft.accounts.service import AccountService
from graft.cli.app import app
from graft.cli.common import (
    JsonOpt,
    OrgOpt,
    emit_json,
    fail,
    out,
    parse_duration,
    run_admin,
    settings,
    table,
    when,
)
from graft.db import Database
from graft.db.migrate import SchemaNotCurrent
from graft.errors import Conflict
from graft.settings import Settings

DEMO_ORG = "demo"
DEMO_ACCOUNT = "admin"

config_app = typer.Typer(help="Inspect the effective configuration.", no_args_is_help=True)
org_app = typer.Typer(help="Create and list organizations.", no_args_is_help=True)
account_app = typer.Typer(
    help="Create and list accounts: users, or service accounts for CI.", no_args_is_help=True
)
token_app = typer.Typer(
    help="Registry tokens: create (shown once), list, rotate (old token keeps working for a "
    "grace period), revoke.",
    no_args_is_help=True,
)
app.add_typer(config_app, name="config")
app.add_typer(org_app, name="org")
app.add_typer(account_app, name="account")
app.add_typer(token_app, name="token")


def show_new_token(new: NewToken, as_json: bool) -> None:
    if as_json:
        emit_json(new)
        return
    info = new.info
    out.print(
        f"Token {info.id} for {info.org}/{info.account} — scopes: {', '.join(info.scopes)}, "
        f"expires: {when(info.expires_at) if info.expires_at else 'never'}"
    )
    if new.previous_valid_until:
        out.print(f"The previous token keeps working until {when(new.previous_valid_until)}.")
    out.print("[bold]This token is shown once; store it now:[/]")
    # Printed without markup or wrapping so it can be copied as is.
    print(new.token)


# -- serve / init / config --------------------------------------------------------------------
@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on [GRAFT_HOST].")] = None,
    port: Annotated[int | None, typer.Option(help="Port [GRAFT_PORT].")] = None,
    workers: Annotated[
        int | None, typer.Option(help="Worker processes [GRAFT_WORKERS].", min=1)
    ] = None,
    server: Annotated[
        str | None, typer.Option(help="ASGI server: granian (default) or uvicorn [GRAFT_SERVER].")
    ] = None,
    blob_port: Annotated[
        int | None,
        typer.Option(
            help="Also run the zero-copy blob server on this port and redirect large "
            "downloads to it; clients must reach this port too [GRAFT_BLOB_SERVER_PORT].",
        ),
    ] = None,
) -> None:
    """Apply pending migrations, then serve every registry and the API."""
    for name, value in (
        ("HOST", host),
        ("PORT", port),
        ("WORKERS", workers),
        ("SERVER", server),
        ("BLOB_SERVER_PORT", blob_port),
    ):
        if value is not None:
            os.environ[f"GRAFT_{name}"] = str(value)  # workers re-read settings from env
    cfg = settings()
    prepare(cfg)
    from graft.runner import run_server

    run_server(cfg)


def prepare(cfg: Settings, *, migrate: bool | None = None) -> None:
    """Create the data directory and bring the database schema up to date (or, with
    migrate_on_start off, check that it is)."""
    cfg.data_dir.mkdir(parents=True, exist_ok=True)

    async def main() -> None:
        db = Database(cfg.effective_database_url)
        try:
            await db.prepare(migrate=cfg.migrate_on_start if migrate is None else migrate)
        finally:
            await db.dispose()

    try:
        asyncio.run(main())
    except OSError as exc:
        raise fail(f"cannot prepare the database: {exc}") from None
    except SchemaNotCurrent as exc:
        raise fail(str(exc)) from None


@app.command()
def migrate() -> None:
    """Apply pending database migrations and exit (run once per upgrade, e.g. as a
    Kubernetes Job, with migrate_on_start off on the replicas)."""
    cfg = settings()
    from graft.db.migrate import current_revision, head_revision

    async def main() -> tuple[str | None, str | None]:
        db = Database(cfg.effective_database_url)
        try:
            before = await current_revision(db.engine)
            await db.migrate()
            return before, await current_revision(db.engine)
        finally:
            await db.dispose()

    try:
        before, after = asyncio.run(main())
    except OSError as exc:
        raise fail(f"cannot migrate the database: {exc}") from None
    if before == after:
        out.print(f"Database schema is current ({after}, this version's {head_revision()}).")
    else:
        out.print(f"Database schema migrated from {before or 'nothing'} to {after}.")


@app.command()
def init(
    demo: Annotated[
        bool,
        typer.Option(
            "--demo",
            help=f"Also create the organization {DEMO_ORG!r} with a site-admin account "
            f"{DEMO_ACCOUNT!r} and print an admin token once.",
        ),
    ] = False,
) -> None:
    """Create the data directory and database schema (safe to run again)."""
    cfg = settings()
    prepare(cfg, migrate=True)  # creating the schema is what init is for
    out.print(f"Graft data directory: {cfg.data_dir}")
    from graft.cli.keys import ensure_keys

    out.print(f"APT archive key: {ensure_keys(cfg.keys_dir)} (graft key show)")
    if not demo:
        return

    async def create_demo(service: AccountService) -> NewToken | None:
        try:
            await service.create_org(DEMO_ORG)
        except Conflict:
            return None
        await service.create_account(DEMO_ORG, DEMO_ACCOUNT, kind="user", site_admin=True)
        return await service.create_token(
            DEMO_ORG, DEMO_ACCOUNT, parse_scopes("admin"), name="demo"
        )

    new = run_admin(create_demo)
    if new is None:
        out.print(
            f"The {DEMO_ORG!r} organization already exists (its token was shown when it was "
            f"created). A new one: graft token create --org {DEMO_ORG} --account {DEMO_ACCOUNT} "
            "--scope admin"
        )
        return
    out.print(f"Created organization {DEMO_ORG!r} and site-admin account {DEMO_ACCOUNT!r}.")
    show_new_token(new, as_json=False)
    out.print(f"Check it: curl -u {DEMO_ACCOUNT}:$TOKEN http://{cfg.host}:{cfg.port}/api/whoami")


@config_app.command("show")
def config_show(as_json: JsonOpt = False) -> None:
    """Print the effective configuration (passwords in URLs masked)."""
    data = settings().masked()
    if as_json:
        emit_json(data)
        return
    table(
        "Effective configuration",
        ["setting", "environment variable", "value"],
        [(k, f"GRAFT_{k.upper()}", v) for k, v in data.items()],
    )


# -- organizations ----------------------------------------------------------------------------
@org_app.command("create")
def org_create(
    name: Annotated[str, typer.Argument(help="Lowercase name, e.g. acme.")],
    as_json: JsonOpt = False,
) -> None:
    """Create an organization."""
    org = run_admin(lambda s: s.create_org(name))
    if as_json:
        emit_json(org)
    else:
        out.print(f"Created organization {org.name!r} (id {org.id}).")


@org_app.command("list")
def org_list(as_json: JsonOpt = False) -> None:
    """List organizations."""
    orgs = run_admin(lambda s: s.list_orgs())
    if as_json:
        emit_json(orgs)
    else:
        rows = [(o.id, o.name, when(o.created_at)) for o in orgs]
        table("Organizations", ["id", "name", "created"], rows)


# -- accounts ---------------------------------------------------------------------------------
@account_app.command("create")
def account_create(
    name: Annotated[str, typer.Argument(help="Account name, e.g. alice or ci-deploy.")],
    org: OrgOpt,
    service: Annotated[
        bool, typer.Option("--service", help="A service account for CI rather than a person.")
    ] = False,
    site_admin: Annotated[
        bool, typer.Option("--site-admin", help="May create organizations through the API.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Create an account in an organization."""
    kind = "service" if service else "user"
    acc = run_admin(lambda s: s.create_account(org, name, kind=kind, site_admin=site_admin))
    if as_json:
        emit_json(acc)
    else:
        out.print(f"Created {acc.kind} account {acc.org}/{acc.name} (id {acc.id}).")


@account_app.command("list")
def account_list(org: OrgOpt, as_json: JsonOpt = False) -> None:
    """List the accounts of an organization."""
    accounts = run_admin(lambda s: s.list_accounts(org))
    if as_json:
        emit_json(accounts)
        return
    rows = [
        (a.id, a.name, a.kind, "yes" if a.site_admin else "", when(a.created_at)) for a in accounts
    ]
    table(f"Accounts of {org}", ["id", "name", "kind", "site admin", "created"], rows)


# -- tokens -----------------------------------------------------------------------------------
@token_app.command("create")
def token_create(
    org: OrgOpt,
    account: Annotated[str, typer.Option("--account", "-a", help="Account that owns the token.")],
    scope: Annotated[
        list[str],
        typer.Option(
            "--scope", "-s", help="read, publish or admin (repeatable; admin ⊃ publish ⊃ read)."
        ),
    ],
    name: Annotated[str, typer.Option(help="A note to recognise the token by.")] = "",
    expires: Annotated[
        str | None, typer.Option(help="Lifetime such as 90d or 12h (default: never expires).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a token. It is printed once and stored only as a hash."""
    try:
        scopes = parse_scopes(scope)
    except ValueError as exc:
        raise fail(str(exc), 2) from None
    lifetime = parse_duration(expires) if expires else None
    new = run_admin(lambda s: s.create_token(org, account, scopes, name=name, expires_in=lifetime))
    show_new_token(new, as_json)


@token_app.command("list")
def token_list(
    org: OrgOpt,
    account: Annotated[
        str | None, typer.Option("--account", "-a", help="Only this account.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """List tokens (never the secret: only its first characters)."""
    tokens = run_admin(lambda s: s.list_tokens(org, account))
    if as_json:
        emit_json(tokens)
        return
    table(
        f"Tokens of {org}",
        ["id", "account", "name", "prefix", "scopes", "status", "created", "expires", "last used"],
        [token_row(t) for t in tokens],
    )


def token_row(t: TokenView) -> list[str]:
    return [
        str(t.id),
        t.account,
        t.name,
        t.prefix + "…",
        " ".join(t.scopes),
        t.status,
        when(t.created_at),
        when(t.expires_at),
        when(t.last_used_at),
    ]


@token_app.command("rotate")
def token_rotate(
    token_id: Annotated[int, typer.Argument(help="Token id (see `graft token list`).")],
    org: Annotated[str | None, typer.Option("--org", "-o", help="Check it belongs here.")] = None,
    grace: Annotated[
        str | None,
        typer.Option(
            help="How long the old token keeps working, e.g. 24h or 0 "
            "(default: GRAFT_TOKEN_GRACE_SECONDS)."
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Issue a replacement token; the old one is rejected after the grace period."""
    period = parse_duration(grace, allow_zero=True) if grace is not None else None
    new = run_admin(lambda s: s.rotate_token(token_id, org=org, grace=period))
    show_new_token(new, as_json)


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[int, typer.Argument(help="Token id (see `graft token list`).")],
    org: Annotated[str | None, typer.Option("--org", "-o", help="Check it belongs here.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Revoke a token at once; running servers refuse it within GRAFT_AUTH_CACHE_SECONDS."""
    view = run_admin(lambda s: s.revoke_token(token_id, org=org))
    if as_json:
        emit_json(view)
    else:
        out.print(f"Revoked token {view.id} ({view.prefix}…) of {view.org}/{view.account}.")
