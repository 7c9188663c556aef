"""`amiyan credentials …`: create, list and revoke API credentials. A secret is printed once, at creation,
on standard output (everything else goes to standard error), and never again."""

import datetime as dt
import uuid
from typing import Annotated

import typer
from rich.console import Console

from api.credentials import (
    CredentialError,
    CredentialKind,
    Role,
    create_credential,
    list_credentials,
    revoke_credential,
)
from api.database import create_pool, resolve_database_url, upgrade_database
from api.logs import configure_logging
from api.settings import Settings
from ledger.unit_of_work import UnitOfWork

credentials_app = typer.Typer(help="API credentials: API keys and OAuth2 clients.", no_args_is_help=True)
console = Console(stderr=True)


def _unit_of_work(settings: Settings) -> UnitOfWork:
    configure_logging(settings.log_format, settings.log_level)
    url = resolve_database_url(settings)
    upgrade_database(url)
    return UnitOfWork(create_pool(url, settings.database_role, 2))


@credentials_app.command("create")
def create(
    role: Annotated[Role, typer.Option(help="What the credential may do.")],
    name: Annotated[str, typer.Option(help="Who holds it: the officer's name, or the system's.")],
    provider_id: Annotated[
        uuid.UUID | None, typer.Option(help="For --role provider: the provider it acts for.")
    ] = None,
    kind: Annotated[CredentialKind, typer.Option(help="api_key, or oauth2_client.")] = CredentialKind.api_key,
    expires_in_days: Annotated[int | None, typer.Option(min=1, help="Unset: no expiry.")] = None,
) -> None:
    """Create a credential and print its secret (once: only its hash is kept)."""
    settings = Settings()
    unit_of_work = _unit_of_work(settings)
    valid_for = dt.timedelta(days=expires_in_days) if expires_in_days is not None else None
    try:
        issued = create_credential(
            unit_of_work, kind, role, name, dt.datetime.now(dt.UTC), provider_id, valid_for
        )
    except CredentialError as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(2) from None
    finally:
        unit_of_work.pool.close()
    credential = issued.credential
    console.print(f"credential {credential.id}: {credential.role} '{credential.name}'")
    if kind is CredentialKind.api_key:
        console.print("API key (shown once; send as 'Authorization: Bearer <key>'):")
        typer.echo(issued.secret)
    else:
        console.print("client id and client secret (the secret is shown once; POST /oauth/token):")
        typer.echo(f"{credential.client_id} {issued.secret}")


@credentials_app.command("list")
def list_all() -> None:
    """Every credential, with its binding and state, one per line, tab-separated (never a secret)."""
    settings = Settings()
    unit_of_work = _unit_of_work(settings)
    credentials = list_credentials(unit_of_work)
    unit_of_work.pool.close()
    typer.echo("id\tkind\trole\tprovider\tpublic_id\tcreated\texpires\trevoked\tname")
    for c in credentials:
        fields = (c.id, c.kind, c.role, c.provider_id, c.public_id, c.created_at, c.expires_at, c.revoked_at)
        typer.echo("\t".join([_cell(value) for value in fields] + [c.name]))


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value)


@credentials_app.command("revoke")
def revoke(credential_id: Annotated[uuid.UUID, typer.Argument(help="The credential's id.")]) -> None:
    """Revoke a credential: an API key stops at once; an OAuth2 client gets no new token (tokens already
    issued live until they expire, `token_lifetime_s`)."""
    settings = Settings()
    unit_of_work = _unit_of_work(settings)
    revoked = revoke_credential(unit_of_work, credential_id, dt.datetime.now(dt.UTC))
    unit_of_work.pool.close()
    if not revoked:
        console.print(f"[red]no credential {credential_id} that is not already revoked[/red]")
        raise typer.Exit(1)
    console.print(f"credential {credential_id} revoked")
