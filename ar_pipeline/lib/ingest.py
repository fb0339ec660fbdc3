"""Load landing files (API JSON pages) into typed DuckDB raw tables, quarantining bad records.

The work is done by DuckDB in bulk: files are read whole with `read_text`, the records array is
unnested, and all column paths of a record are extracted in one `json_extract_string` call. Each
value is type-checked; a record with a missing required value or a value that does not cast goes to
`ingest_audit.quarantine` with the file, the record's position, the column and what was expected.

Idempotency: `ingest_audit.file_loads` remembers each file's size and mtime. Unchanged files are
skipped; a changed file's earlier rows are removed and it is loaded again; a record already present
with identical content (same key and hash, e.g. from an overlapping export) is not inserted twice.
Every record in every file is accounted for: rows_in_file = loaded + duplicate + quarantined.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from ar_pipeline.lib.ingest_config import DUCKDB_TYPES, ISO_CURRENCIES, ColumnSpec, EntitySpec, SourceSpec

AUDIT_SCHEMA = "ingest_audit"
LINEAGE_COLUMNS = {
    "_source_file": "VARCHAR",
    "_source_row": "BIGINT",
    "_record_hash": "VARCHAR",
    "_batch_id": "VARCHAR",
    "_loaded_at": "TIMESTAMPTZ",
}
#: Bytes of landing files parsed per DuckDB statement: bounds memory (text plus parsed records take
#: a few times the file size) while keeping the per-statement overhead small.
CHUNK_BYTES = 128 * 2**20

_EXPECTED = {
    "varchar": "a string",
    "currency": "a 3-letter ISO currency code",
    "decimal": "a decimal number",
    "rate": "a decimal number",
    "bigint": "an integer",
    "boolean": "true or false",
    "date": "a date YYYY-MM-DD",
    "timestamp": "an ISO-8601 timestamp",
    "json": "JSON",
}


@dataclass
class EntityLoadResult:
    source: str
    table: str
    files_seen: int = 0
    files_loaded: int = 0
    files_skipped_unchanged: int = 0
    rows_in_files: int = 0
    rows_loaded: int = 0
    rows_duplicate: int = 0
    rows_quarantined: int = 0
    #: Rows left out on purpose by the config (invoice exports' `keep_only`); not input records.
    rows_filtered: int = 0
    quarantine_samples: list[str] = field(default_factory=list)

    @property
    def reconciles(self) -> bool:
        return self.rows_in_files == self.rows_loaded + self.rows_duplicate + self.rows_quarantined


def qualified(source: SourceSpec, entity: EntitySpec) -> str:
    return f"{source.schema_name}.{entity.table}"


def ensure_audit_tables(conn: duckdb.DuckDBPyConnection) -> None:
    """Create the audit tables (quarantine, file_loads) shared by every loader if they are missing."""
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {AUDIT_SCHEMA}")
    conn.execute(
        f"""CREATE TABLE IF NOT EXISTS {AUDIT_SCHEMA}.quarantine (
            source VARCHAR, raw_table VARCHAR, source_file VARCHAR, source_row BIGINT,
            column_name VARCHAR, expected VARCHAR, raw_value VARCHAR, reason VARCHAR,
            record JSON, batch_id VARCHAR, quarantined_at TIMESTAMPTZ)"""
    )
    conn.execute(
        f"""CREATE TABLE IF NOT EXISTS {AUDIT_SCHEMA}.file_loads (
            source VARCHAR, raw_table VARCHAR, source_file VARCHAR, file_size BIGINT,
            file_mtime_ns BIGINT, rows_in_file BIGINT, rows_loaded BIGINT, rows_duplicate BIGINT,
            rows_quarantined BIGINT, batch_id VARCHAR, loaded_at TIMESTAMPTZ)"""
    )


def ensure_tables(conn: duckdb.DuckDBPyConnection, source: SourceSpec, entity: EntitySpec) -> None:
    """Create the raw table and the audit tables if they do not exist yet."""
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {source.schema_name}")
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {AUDIT_SCHEMA}")
    cols = [f"{c.name} {DUCKDB_TYPES[c.type]}" for c in entity.columns]
    cols += [f"{name} {typ}" for name, typ in LINEAGE_COLUMNS.items()]
    conn.execute(f"CREATE TABLE IF NOT EXISTS {qualified(source, entity)} ({', '.join(cols)})")
    # A column added to the config later is added to an existing table (null in older rows).
    for c in entity.columns:
        conn.execute(
            f"ALTER TABLE {qualified(source, entity)} ADD COLUMN IF NOT EXISTS {c.name} {DUCKDB_TYPES[c.type]}"
        )
    ensure_audit_tables(conn)


def _typed_expr(column: ColumnSpec, raw: str) -> str:
    """SQL turning the extracted text `raw` into the column's type (NULL when it does not cast)."""
    if column.type == "json":
        return f"CAST({raw} AS JSON)"
    if column.type == "currency":
        codes = ", ".join(f"'{c}'" for c in sorted(ISO_CURRENCIES))
        return f"CASE WHEN upper({raw}) IN ({codes}) THEN {raw} END"
    if column.type == "bigint":
        # try_cast would round '12.5' to 13; an integer field with a fraction is bad data.
        return f"CASE WHEN regexp_full_match({raw}, '-?[0-9]+') THEN CAST({raw} AS BIGINT) END"
    return f"TRY_CAST({raw} AS {DUCKDB_TYPES[column.type]})"


def _problem_expr(column: ColumnSpec, raw: str, typed: str) -> str:
    """SQL yielding a struct describing what is wrong with this column's value, or NULL."""
    expected = _EXPECTED[column.type]
    checks = []
    if column.required:
        checks.append(
            f"WHEN {raw} IS NULL THEN {{'column_name': '{column.name}', "
            f"'expected': '{expected} (required)', 'raw_value': NULL::VARCHAR, "
            f"'reason': 'missing required field {column.path}'}}"
        )
    if column.type != "json":
        checks.append(
            f"WHEN {raw} IS NOT NULL AND {typed} IS NULL THEN {{'column_name': '{column.name}', "
            f"'expected': '{expected}', 'raw_value': left({raw}, 200), "
            f"'reason': '{column.path}: expected {expected}, got ' || left({raw}, 200)}}"
        )
    if not checks:
        return "NULL"
    return "CASE " + " ".join(checks) + " END"


def _sql_list(values: Iterable[str]) -> str:
    return "[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + "]"


def _load_chunk(
    conn: duckdb.DuckDBPyConnection,
    source: SourceSpec,
    entity: EntitySpec,
    files: list[str],
    batch_id: str,
    loaded_at: datetime,
) -> None:
    """Parse, check and insert one chunk of files; per-file counts go to file_loads."""
    paths = [c.path for c in entity.columns]
    raw_cols = ",\n".join(f"v[{i + 1}] AS r_{c.name}" for i, c in enumerate(entity.columns))
    typed_cols = ",\n".join(
        f"{_typed_expr(c, f'r_{c.name}')} AS {c.name}" for c in entity.columns
    )
    problems = ", ".join(
        _problem_expr(c, f"r_{c.name}", _typed_expr(c, f"r_{c.name}")) for c in entity.columns
    )
    path = entity.records_path
    # Each file is parsed once: `path[*]` yields the records as a list of JSON texts. NULL means the
    # file is not JSON; an empty list is either an empty page or a records path that is not an
    # array, told apart (rarely needed, so only then) by looking at the path's type.
    conn.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _ingest_files AS
        SELECT filename, records,
               CASE WHEN records IS NULL THEN 'file is not valid JSON'
                    WHEN len(records) = 0
                         AND coalesce(json_type(json_extract(content, '{path}')), 'NULL') NOT IN ('ARRAY', 'NULL')
                    THEN 'no array at {path} (found ' || json_type(json_extract(content, '{path}')) || ')'
               END AS file_problem,
               CASE WHEN records IS NULL OR len(records) = 0 THEN left(content, 200) END AS head
        FROM (SELECT filename, content, try(json_extract(content, '{path}[*]')) AS records
              FROM read_text({_sql_list(files)}))
        """
    )
    conn.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _ingest_records AS
        WITH records AS (
            SELECT filename, unnest(records) AS record, generate_subscripts(records, 1) AS source_row
            FROM _ingest_files WHERE file_problem IS NULL
        ),
        extracted AS (
            SELECT filename, source_row, record,
                   json_extract_string(record, {_sql_list(paths)}) AS v
            FROM records
        ),
        raw_values AS (
            SELECT filename, source_row, record, {raw_cols} FROM extracted
        )
        SELECT filename, source_row, record, md5(CAST(record AS VARCHAR)) AS record_hash,
               {typed_cols},
               list_filter([{problems}], lambda p: p IS NOT NULL) AS problems
        FROM raw_values
        """
    )
    # A file that is not JSON, or whose records path is not an array, is quarantined as one row:
    # nothing in it can be attributed to a record, and it must not vanish silently.
    conn.execute(
        f"""
        INSERT INTO {AUDIT_SCHEMA}.quarantine
        SELECT ?, ?, filename, NULL, NULL, 'a JSON file with an array at {path}', head,
               file_problem, NULL, ?, ?
        FROM _ingest_files WHERE file_problem IS NOT NULL
        """,
        [source.source, entity.table, batch_id, loaded_at],
    )
    conn.execute(
        f"""
        INSERT INTO {AUDIT_SCHEMA}.quarantine
        SELECT ?, ?, filename, source_row, problems[1].column_name, problems[1].expected,
               problems[1].raw_value, list_aggregate(list_transform(problems, lambda p: p.reason), 'string_agg', '; '),
               record, ?, ?
        FROM _ingest_records WHERE len(problems) > 0
        """,
        [source.source, entity.table, batch_id, loaded_at],
    )
    key = entity.primary_key
    key_match = " AND ".join(f"t.{k} IS NOT DISTINCT FROM n.{k}" for k in key)
    col_names = ", ".join(c.name for c in entity.columns)
    # Keep the first occurrence of an identical record within the chunk, and skip records already
    # loaded from another file: same key and same content is the same fact, not a new version.
    conn.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _ingest_new AS
        SELECT * FROM (
            SELECT *, row_number() OVER (
                PARTITION BY {", ".join(key)}, record_hash ORDER BY filename, source_row) AS _dup_rank
            FROM _ingest_records WHERE len(problems) = 0
        ) n
        WHERE _dup_rank = 1 AND NOT EXISTS (
            SELECT 1 FROM {qualified(source, entity)} t
            WHERE {key_match} AND t._record_hash = n.record_hash)
        """
    )
    conn.execute(
        f"""
        INSERT INTO {qualified(source, entity)} ({col_names}, {", ".join(LINEAGE_COLUMNS)})
        SELECT {col_names}, filename, source_row, record_hash, ?, ? FROM _ingest_new
        """,
        [batch_id, loaded_at],
    )
    conn.execute(
        f"""
        INSERT INTO {AUDIT_SCHEMA}.file_loads
        SELECT ?, ?, f.filename, NULL, NULL,
               coalesce(r.n_in, 0), coalesce(l.n_loaded, 0),
               coalesce(r.n_ok, 0) - coalesce(l.n_loaded, 0),
               coalesce(r.n_bad, 0) + coalesce(fb.n_bad_file, 0), ?, ?
        FROM (SELECT unnest({_sql_list(files)}) AS filename) f
        LEFT JOIN (SELECT filename, count(*) AS n_in, count(*) FILTER (len(problems) = 0) AS n_ok,
                          count(*) FILTER (len(problems) > 0) AS n_bad
                   FROM _ingest_records GROUP BY filename) r USING (filename)
        LEFT JOIN (SELECT filename, count(*) AS n_loaded FROM _ingest_new GROUP BY filename) l
               USING (filename)
        LEFT JOIN (SELECT source_file AS filename, count(*) AS n_bad_file
                   FROM {AUDIT_SCHEMA}.quarantine
                   WHERE raw_table = ? AND source = ? AND batch_id = ? AND source_row IS NULL
                   GROUP BY source_file) fb USING (filename)
        """,
        [source.source, entity.table, batch_id, loaded_at, entity.table, source.source, batch_id],
    )
    # A broken file counts as one input "row" so that it shows up in the reconciliation totals.
    conn.execute(
        f"""UPDATE {AUDIT_SCHEMA}.file_loads SET rows_in_file = rows_in_file + 1
            WHERE batch_id = ? AND raw_table = ? AND source = ? AND source_file IN (
                SELECT source_file FROM {AUDIT_SCHEMA}.quarantine
                WHERE batch_id = ? AND raw_table = ? AND source = ? AND source_row IS NULL)""",
        [batch_id, entity.table, source.source] * 2,
    )
    conn.execute("DROP TABLE _ingest_files")
    conn.execute("DROP TABLE _ingest_records")
    conn.execute("DROP TABLE _ingest_new")


def _record_file_stats(
    conn: duckdb.DuckDBPyConnection,
    source: SourceSpec,
    entity: EntitySpec,
    batch_id: str,
    stats: dict,
) -> None:
    """Remember size and mtime of the files just loaded, to skip them next time if unchanged."""
    names = list(stats)
    conn.execute(
        f"""UPDATE {AUDIT_SCHEMA}.file_loads AS fl SET file_size = s.size, file_mtime_ns = s.mtime
            FROM (SELECT unnest(?) AS name, unnest(?) AS size, unnest(?) AS mtime) s
            WHERE fl.source_file = s.name AND fl.source = ? AND fl.raw_table = ? AND fl.batch_id = ?""",
        [names, [stats[n].st_size for n in names], [stats[n].st_mtime_ns for n in names],
         source.source, entity.table, batch_id],
    )


def chunk_by_size(names: list[str], sizes: dict[str, int], limit: int) -> list[list[str]]:
    """Consecutive groups of files whose sizes add up to at most `limit` (a bigger file goes alone)."""
    chunks: list[list[str]] = []
    current: list[str] = []
    total = 0
    for name in names:
        if current and total + sizes[name] > limit:
            chunks.append(current)
            current, total = [], 0
        current.append(name)
        total += sizes[name]
    if current:
        chunks.append(current)
    return chunks


def landing_files(landing_dir: Path, source: SourceSpec, entity: EntitySpec) -> list[Path]:
    return sorted(p.resolve() for p in (landing_dir / source.landing_subdir).glob(entity.files))


def entities_for_file(
    path: Path, landing_dir: Path, sources: list[SourceSpec]
) -> list[tuple[SourceSpec, EntitySpec]]:
    """The (source, entity) whose landing glob matches `path`, judged by its place under the landing
    folder, or failing that by its last two path parts (e.g. `invoice/page_1.json`)."""
    path = path.resolve()
    matches = []
    for source in sources:
        base = (landing_dir / source.landing_subdir).resolve()
        try:
            relative = path.relative_to(base)
        except ValueError:
            relative = Path(*path.parts[-2:])
        matches += [(source, e) for e in source.entities if relative.match(e.files)]
    return matches


def files_to_load(
    conn: duckdb.DuckDBPyConnection, source_name: str, raw_table: str, stats: dict
) -> tuple[list[str], list[str]]:
    """(files to load, those of them loaded before and changed since), judged by size and mtime
    against `file_loads`; `stats` maps resolved file names to `os.stat` results."""
    known = dict(
        (row[0], (row[1], row[2]))
        for row in conn.execute(
            f"""SELECT source_file, file_size, file_mtime_ns FROM {AUDIT_SCHEMA}.file_loads
                WHERE source = ? AND raw_table = ?""",
            [source_name, raw_table],
        ).fetchall()
    )
    todo = [name for name, st in stats.items() if known.get(name) != (st.st_size, st.st_mtime_ns)]
    return todo, [name for name in todo if name in known]


def forget_files(
    conn: duckdb.DuckDBPyConnection,
    source_name: str,
    raw_table: str,
    table_sql: str,
    names: list[str],
    table_filter: str = "",
) -> None:
    """Remove what earlier loads of these files put in the raw table and the audit tables.
    `table_filter` narrows the raw-table delete (e.g. to one export source in a shared table)."""
    listing = _sql_list(names)
    conn.execute(
        f"DELETE FROM {table_sql} WHERE _source_file IN (SELECT unnest({listing})){table_filter}"
    )
    for table in ("quarantine", "file_loads"):
        conn.execute(
            f"""DELETE FROM {AUDIT_SCHEMA}.{table} WHERE source = ? AND raw_table = ?
                AND source_file IN (SELECT unnest({listing}))""",
            [source_name, raw_table],
        )


def batch_totals(
    conn: duckdb.DuckDBPyConnection, result: EntityLoadResult, batch_id: str, source_name: str,
    raw_table: str,
) -> None:
    """Fill the file and row counts of `result` from the batch's `file_loads` rows."""
    row = conn.execute(
        f"""SELECT count(*), coalesce(sum(rows_in_file), 0), coalesce(sum(rows_loaded), 0),
                   coalesce(sum(rows_duplicate), 0), coalesce(sum(rows_quarantined), 0)
            FROM {AUDIT_SCHEMA}.file_loads WHERE batch_id = ? AND source = ? AND raw_table = ?""",
        [batch_id, source_name, raw_table],
    ).fetchone()
    assert row is not None
    (result.files_loaded, result.rows_in_files, result.rows_loaded, result.rows_duplicate,
     result.rows_quarantined) = (int(x) for x in row)


def load_entity(
    conn: duckdb.DuckDBPyConnection,
    source: SourceSpec,
    entity: EntitySpec,
    landing_dir: Path,
    batch_id: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    files: list[Path] | None = None,
) -> EntityLoadResult:
    """Load new and changed landing files of one entity; returns what happened, file by file summed.

    `files` restricts the load to those files (e.g. one export given on the command line); by
    default every file matching the entity's glob under the landing folder is considered."""
    batch_id = batch_id or uuid.uuid4().hex
    loaded_at = datetime.now(UTC)
    ensure_tables(conn, source, entity)
    result = EntityLoadResult(source=source.source, table=entity.table)

    if files is None:
        files = landing_files(landing_dir, source, entity)
    result.files_seen = len(files)
    stats = {str(p.resolve()): p.stat() for p in files}
    todo, changed = files_to_load(conn, source.source, entity.table, stats)
    result.files_skipped_unchanged = len(stats) - len(todo)
    conn.execute("BEGIN TRANSACTION")
    try:
        if changed:
            # A file that changed replaces what it loaded before (never adds to it).
            forget_files(conn, source.source, entity.table, qualified(source, entity), changed)
        done = 0
        for chunk in chunk_by_size(todo, {n: stats[n].st_size for n in todo}, CHUNK_BYTES):
            _load_chunk(conn, source, entity, chunk, batch_id, loaded_at)
            done += len(chunk)
            if progress:
                progress(done, len(todo))
        if todo:
            _record_file_stats(conn, source, entity, batch_id, {n: stats[n] for n in todo})
        conn.execute("COMMIT")
    except Exception:
        conn.execute("ROLLBACK")
        raise

    batch_totals(conn, result, batch_id, source.source, entity.table)
    result.quarantine_samples = [
        f"{r[0]} record {r[1] if r[1] is not None else '-'}: {r[2]}"
        for r in conn.execute(
            f"""SELECT source_file, source_row, reason FROM {AUDIT_SCHEMA}.quarantine
                WHERE batch_id = ? AND source = ? AND raw_table = ? ORDER BY source_file, source_row
                LIMIT 5""",
            [batch_id, source.source, entity.table],
        ).fetchall()
    ]
    return result
