"""The history of every generation: a SQLite file by default, PostgreSQL through DATABASE_URL."""

from engine.history.records import AttemptRecord, GenerationRecord
from engine.history.store import HistoryStore, database_url

__all__ = ["AttemptRecord", "GenerationRecord", "HistoryStore", "database_url"]
