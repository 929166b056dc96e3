"""Imports a shop folder (docs/data-format.md) into the feature store: every row of every file is validated first;
any problem rejects the whole import (``ImportRejected`` lists file, line, column, message) and nothing is written.
A clean folder is written in ONE transaction, upserting by id, so importing the same folder twice changes nothing."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from shared.core.errors import ImportRejected
from shared.store.event_rules import check_event
from shared.store.records import EventIn
from shared.store.shop_format import TABLES, TableSpec, find_table_file, open_table_file, parse_value

JSON_KINDS = ("json_list", "json_object")


@dataclass
class ImportReport:
    counts: dict[str, int] = field(default_factory=dict)  # rows written per table
    files: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def __str__(self) -> str:
        rows = ", ".join(f"{t} {n}" for t, n in self.counts.items())
        return f"imported {rows} from {len(self.files)} file(s) in {self.seconds:.1f}s"


@dataclass
class _Loaded:
    spec: TableSpec
    file: str
    columns: list[str]
    rows: list[tuple[int, dict[str, Any]]]  # (line, typed values)


def import_shop(engine: Engine, folder: str | Path) -> ImportReport:
    started = time.perf_counter()
    folder = Path(folder)
    if not folder.is_dir():
        raise ImportRejected([(str(folder), 0, "", "is not a folder")])
    problems: list[tuple[str, int, str, str]] = []
    loaded: dict[str, _Loaded] = {}
    for spec in TABLES:
        path = find_table_file(folder, spec.name)
        if path is None:
            if spec.required_file:
                problems.append((f"{spec.name}.csv", 0, "", "required file is missing"))
            continue
        loaded[spec.name] = _read(spec, path, problems)
    if not loaded:
        problems.append((str(folder), 0, "", "no shop files found (users.csv, products.csv, ...)"))
    _check_references(engine, loaded, problems)
    if problems:
        problems.sort(key=lambda p: (p[0], p[1]))
        raise ImportRejected(problems)
    report = ImportReport(files=[t.file for t in loaded.values()])
    with engine.begin() as conn:
        for table in loaded.values():
            report.counts[table.spec.name] = _write(conn, table)
    report.seconds = time.perf_counter() - started
    return report


def _read(spec: TableSpec, path: Path, problems: list) -> _Loaded:
    table_file = open_table_file(path)
    name = path.name
    known = spec.by_name
    for header in table_file.columns:
        if header not in known:
            problems.append((name, 1, header, f"unknown column (expected some of {', '.join(known)})"))
    missing = [c.name for c in spec.columns if c.required and c.name not in table_file.columns]
    for column_name in missing:
        problems.append((name, 1, column_name, "required column is missing"))
    check_rules = spec.name == "events" and not missing  # the event rules need the required columns
    columns = [c for c in table_file.columns if c in known]
    rows: list[tuple[int, dict[str, Any]]] = []
    keys: dict[tuple, int] = {}
    now = datetime.now(UTC)
    for line, raw in table_file.rows:
        row_problems = len(problems)
        values: dict[str, Any] = {}
        for column_name in columns:
            column = known[column_name]
            try:
                values[column_name] = parse_value(column, raw.get(column_name))
            except ValueError as exc:
                problems.append((name, line, column_name, str(exc)))
                continue
            if column.required and values[column_name] is None:
                problems.append((name, line, column_name, "is required"))
        if spec.key:
            key = tuple(values.get(k) for k in spec.key)
            if key in keys:
                problems.append(
                    (name, line, spec.key[-1], f"duplicate id {'/'.join(map(str, key))} (first on line {keys[key]})")
                )
            keys.setdefault(key, line)
        if check_rules and len(problems) == row_problems:  # once the row's cells parse
            _check_event(name, line, values, now, problems)
        rows.append((line, values))
    return _Loaded(spec, name, columns, rows)


def _check_event(name: str, line: int, values: dict[str, Any], now: datetime, problems: list) -> None:
    """The event rules ingestion applies (shared.store.event_rules), on the row's typed values."""
    cells: dict[str, Any] = {f.name: values.get(f.name) for f in fields(EventIn)}
    event = EventIn(**cells)
    event.properties = values.get("properties") or {}  # an empty cell is no properties, not a bad value
    problem = check_event(line, event, now)
    if problem:
        problems.append((name, line, problem.field, problem.message))


def _check_references(engine: Engine, loaded: dict[str, _Loaded], problems: list) -> None:
    """Every referenced id must be in the referenced file or already in the database (one query per table)."""
    in_files: dict[str, set] = {}
    wanted: dict[str, set] = {}
    # (table, column, "target_table.target_column") for every referencing column present in a file
    refs = [
        (t, c, c.references) for t in loaded.values() for c in t.spec.columns if c.references and c.name in t.columns
    ]
    for _, _, reference in refs:
        target_table, target_column = reference.split(".")
        if target_table in loaded and target_table not in in_files:
            in_files[target_table] = {v.get(target_column) for _, v in loaded[target_table].rows}
    for table, column, reference in refs:
        target_table = reference.split(".")[0]
        present = in_files.get(target_table, set())
        wanted.setdefault(reference, set()).update(
            v[column.name] for _, v in table.rows if v.get(column.name) is not None and v[column.name] not in present
        )
    in_db: dict[str, set] = {}
    with engine.connect() as conn:
        for reference, ids in wanted.items():
            target_table, target_column = reference.split(".")
            in_db[reference] = (
                set(
                    conn.execute(
                        text(f"select {target_column} from {target_table} where {target_column} = any(:ids)"),
                        {"ids": sorted(ids)},
                    ).scalars()
                )
                if ids
                else set()
            )
    for table, column, reference in refs:
        target_table = reference.split(".")[0]
        present = in_files.get(target_table, set()) | in_db[reference]
        for line, values in table.rows:
            value = values.get(column.name)
            if value is not None and value not in present:
                problems.append(
                    (
                        table.file,
                        line,
                        column.name,
                        f"unknown {target_table[:-1]} {value!r} (not in {target_table} file or database)",
                    )
                )


def _write(conn, table: _Loaded) -> int:
    """COPY into a temporary table, then one INSERT ... ON CONFLICT into the real one."""
    spec, columns = table.spec, table.columns
    if not table.rows:
        return 0
    stage = f"import_{spec.name}"
    conn.exec_driver_sql(f"create temp table {stage} (like {spec.name} including defaults) on commit drop")
    kinds = spec.by_name
    cursor = conn.connection.driver_connection.cursor()
    with cursor.copy(f"copy {stage} ({', '.join(columns)}) from stdin") as copy:
        for _, values in table.rows:
            copy.write_row(
                [
                    json.dumps(values[c]) if kinds[c].kind in JSON_KINDS and values[c] is not None else values[c]
                    for c in columns
                ]
            )
    names = ", ".join(columns)
    if not spec.key:  # no id: skip rows identical in the key-like columns to one already there
        sql = (
            f"insert into {spec.name} ({names}) select distinct {names} from {stage} s where not exists ("
            f"select 1 from {spec.name} t where {' and '.join(f't.{c} = s.{c}' for c in columns)})"
        )
    else:
        updates = [c for c in columns if c not in spec.key]
        action = (
            "do update set " + ", ".join(f"{c} = excluded.{c}" for c in updates)
            if spec.upsert and updates
            else "do nothing"
        )
        sql = (
            f"insert into {spec.name} ({names}) select {names} from {stage} "
            f"on conflict ({', '.join(spec.key)}) {action}"
        )
    return conn.exec_driver_sql(sql).rowcount
