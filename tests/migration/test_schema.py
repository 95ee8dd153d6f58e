"""The migrated schema is exactly the models' schema, on SQLite and on PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from reelgate.store.db import Database
from reelgate.store.migrate import upgrade
from reelgate.store.tables import Base


def test_migrations_produce_the_models_schema(db_url: str) -> None:
    db = Database(db_url)
    try:
        upgrade(db)
        with db.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(context, Base.metadata)
            tables = set(inspect(conn).get_table_names())
        assert diff == []
        assert {"api_keys", "tasks", "task_events", "uploads", "workers", "meta"} <= tables
        upgrade(db)  # applying again is a no-op
    finally:
        db.dispose()


def test_a_schema_missing_a_column_is_noticed(db_url: str) -> None:
    """The comparison above can fail: drop a column and it reports it."""
    db = Database(db_url)
    try:
        upgrade(db)
        with db.engine.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE uploads DROP COLUMN original_name")
        with db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert any(
            change[0] == "add_column" and change[3].name == "original_name" for change in diff
        )
    finally:
        db.dispose()
