"""``stockade db``: the project store (migrations here; advisory import and status join later)."""

from __future__ import annotations

import typer

from stockade.cli.common import DbOption, console, open_db

db_app = typer.Typer(help="The project database: migrations, advisory data.", no_args_is_help=True)


@db_app.command("migrate")
def migrate(db: DbOption = None) -> None:
    """Create the database or bring its schema up to date."""
    store = open_db(db)
    console.print(f"database ready: {store.safe_url} ({store.dialect})")


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
