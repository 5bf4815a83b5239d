"""Readers and writers: Parquet/CSV/JSON/XLSX files, folders of files, DuckDB, SQL databases.

Every writer is atomic (a temporary file or folder in the same place, then a
rename), so a crash never leaves a half-written output behind.
"""

from crmkit.io._atomic import atomic_dir, atomic_write, write_json
from crmkit.io._tables import conform, read_table, read_tables, write_table, write_tables
from crmkit.io._writeback import write_back

__all__ = sorted([
    "atomic_dir",
    "atomic_write",
    "conform",
    "read_table",
    "read_tables",
    "write_back",
    "write_json",
    "write_table",
    "write_tables",
])
