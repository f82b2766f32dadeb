"""Alembic migrations of the meldpunt schema (run through meldpunt.store.migrate)."""
