"""Alembic environment: runs on the connection that ``store.db.migrate`` hands in."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from publisher.store.tables import metadata

config = context.config
connection = config.attributes.get("connection")

if connection is None:  # `alembic` command line (autogenerate): use -x url=...
    url = context.get_x_argument(as_dictionary=True).get("url", "sqlite:///var/alembic-dev.db")
    engine = create_engine(url)
    with engine.begin() as conn:
        context.configure(connection=conn, target_metadata=metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
else:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
