"""Read exported tables into typed Arrow tables; rows that do not parse come back as rejects."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from customer360.synapse_link.chunks import StringChunk, string_chunks
from customer360.synapse_link.convert import convert_column
from customer360.synapse_link.csv_records import SourceText, gc_paused
from customer360.synapse_link.filesystem import LandingFileSystem
from customer360.synapse_link.layout import ExportFolder, entity_files
from customer360.synapse_link.model import ID_COLUMN, EntityModel, SynapseLinkFormatError
from customer360.synapse_link.schema import (
    EXPORT_FOLDER_COLUMN,
    SOURCE_FILE_COLUMN,
    arrow_schema,
)

_MAX_RAW_CHARS = 1 << 20  # an unterminated quote can swallow the rest of a big file
_UNDECODABLE = re.compile("[\udc80-\udcff]")  # bytes that were not UTF-8 (surrogateescape)

REJECTED_SCHEMA = pa.schema(
    [
        pa.field("file", pa.string()),
        pa.field("line", pa.int64()),
        pa.field("raw", pa.string()),
        pa.field("reason", pa.string()),
    ]
)


@dataclass(frozen=True)
class RejectedRow:
    """A record that could not be read: where it is, its text, and what is wrong with it."""

    file: str  # path relative to the export root
    line: int  # 1-based physical line where the record starts
    raw: str  # the record's text, without its final line break
    reason: str  # names the column and the problem with the value


@dataclass
class ReadResult:
    """Typed rows (model columns + ``_source_file``, ``_source_line``, ``_export_folder``) and the
    rows that were rejected."""

    table: pa.Table
    rejected: list[RejectedRow] = field(default_factory=list)
    # Files whose last line has no line break yet (still being written): that line is not read
    # now; it is read once the file is complete (its size, hence its fingerprint, changes).
    held_back: list[RejectedRow] = field(default_factory=list)
    # Files listed but not readable (gone since the listing, unreadable): each is set aside
    # whole with the reason (line 0); the folder's other files are read.
    files_set_aside: list[RejectedRow] = field(default_factory=list)

    def rejected_table(self) -> pa.Table:
        """The rejected rows as an Arrow table (file, line, raw, reason)."""
        return pa.Table.from_pylist(
            [
                {"file": r.file, "line": r.line, "raw": r.raw, "reason": r.reason}
                for r in self.rejected
            ],
            schema=REJECTED_SCHEMA,
        )


def read_entity(
    fs: LandingFileSystem,
    folder: ExportFolder,
    entity: str,
    *,
    model: EntityModel | None = None,
) -> ReadResult:
    """Read every partition file of ``entity`` in ``folder``.

    ``model`` (optional) reads the folder with a newer model of the same table, so folders
    written before a column was added come back with the same schema (the new column null);
    it must extend the folder's model by appending columns only.
    """
    if folder.error is not None:
        raise SynapseLinkFormatError(
            f"export folder {folder.name or '(root layout)'} cannot be read: {folder.error}"
        )
    try:
        folder_model = folder.entities[entity]
    except KeyError:
        where = folder.name or "the root layout"
        known = ", ".join(sorted(folder.entities)) or "none"
        raise KeyError(f"{where} has no table {entity!r} (tables: {known})") from None
    effective = folder_model
    if model is not None:
        if model.name != entity or not folder_model.is_prefix_of(model):
            raise SynapseLinkFormatError(
                f"model for {model.name!r} does not extend the columns of {entity!r} in "
                f"{folder.name or 'the root layout'}: "
                f"{folder_model.column_names} is not a prefix of {model.column_names}"
            )
        effective = model
    # Synapse Link writes every attribute of a folder's model in that folder's files; only the
    # root layout, appended in place for years, holds rows written before columns were added.
    min_fields = len(folder_model.attributes) if folder.name else 1
    results: list[ReadResult] = []
    set_aside: list[RejectedRow] = []
    for path in entity_files(fs, folder, entity):
        try:
            data = fs.read_bytes(path)
        except OSError as exc:
            set_aside.append(RejectedRow(path, 0, "", f"file set aside: cannot be read: {exc}"))
            continue
        results.append(
            parse_entity_csv(
                data, effective, source_file=path, export_folder=folder.name, min_fields=min_fields
            )
        )
    read = _concat(results, effective)
    read.files_set_aside = set_aside
    return read


def read_entity_folders(
    fs: LandingFileSystem,
    folders: Sequence[ExportFolder],
    entity: str,
    *,
    model: EntityModel | None = None,
) -> ReadResult:
    """Read ``entity`` from several folders into one table with one schema.

    Without ``model``, the model of the newest folder that has the table is used (older folders
    must be prefixes of it). Folders without the table are skipped.
    """
    having = [folder for folder in folders if entity in folder.entities]
    if not having:
        raise KeyError(f"no folder has table {entity!r}")
    effective = model or having[-1].entities[entity]
    return _concat(
        [read_entity(fs, folder, entity, model=effective) for folder in having], effective
    )


def parse_entity_csv(
    data: bytes,
    entity: EntityModel,
    *,
    source_file: str,
    export_folder: str = "",
    min_fields: int | None = None,
) -> ReadResult:
    """Parse one headerless CSV partition file of ``entity``.

    Records need ``min_fields`` fields (default: every attribute of ``entity``); fewer are
    rejected. A last line without its line break is a record still being written: it is held
    back (``ReadResult.held_back``), not read.
    """
    data, held_back = _complete_lines(data, source_file)
    source = SourceText(data)
    schema = arrow_schema(entity, include_ingestion_columns=True)
    tables: list[pa.Table] = []
    rejected: list[RejectedRow] = []
    with gc_paused():
        for chunk in string_chunks(source, len(entity.attributes), min_fields):
            table, reasons = _typed_chunk(chunk, entity, schema)
            rejected += [
                RejectedRow(source_file, p.start, _shown(source.raw(p.start, p.end)), p.reason)
                for p in chunk.problems
            ]
            if reasons:
                keep = np.ones(table.num_rows, dtype=bool)
                keep[list(reasons)] = False
                table = table.filter(pa.array(keep))
                rejected += [
                    RejectedRow(
                        source_file,
                        chunk.start_line(index),
                        _shown(source.raw(chunk.start_line(index), chunk.end_line(index))),
                        "; ".join(problems),
                    )
                    for index, problems in reasons.items()
                ]
            tables.append(table)
    table = pa.concat_tables(tables) if tables else schema.empty_table()
    rows = table.num_rows
    table = table.set_column(
        table.num_columns - 3,
        schema.field(SOURCE_FILE_COLUMN),
        pa.array(np.full(rows, source_file, dtype=object), pa.string()),
    ).set_column(
        table.num_columns - 1,
        schema.field(EXPORT_FOLDER_COLUMN),
        pa.array(np.full(rows, export_folder, dtype=object), pa.string()),
    )
    rejected.sort(key=lambda row: row.line)
    return ReadResult(table, rejected, held_back)


def _complete_lines(data: bytes, source_file: str) -> tuple[bytes, list[RejectedRow]]:
    """The file up to its last line break, and the cut-off tail (a record being written)."""
    if not data or data.endswith((b"\n", b"\r")):
        return data, []
    cut = max(data.rfind(b"\n"), data.rfind(b"\r")) + 1
    tail = data[cut:]
    if not tail.strip():
        return data[:cut], []
    line = len(SourceText(data[:cut]).lines) + 1  # only on this rare path: a second decode
    reason = (
        f"last line has no line break yet (the file is still being written): {len(tail)} "
        "bytes not read until it is complete"
    )
    return data[:cut], [RejectedRow(source_file, line, _shown(_decoded(tail)), reason)]


def _decoded(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def _typed_chunk(
    chunk: StringChunk, entity: EntityModel, schema: pa.Schema
) -> tuple[pa.Table, dict[int, list[str]]]:
    """One chunk as typed columns, and {row index: reasons} for the rows to reject."""
    reasons: dict[int, list[str]] = {}
    arrays = []
    for position, attribute in enumerate(entity.attributes):
        array, bad = convert_column(chunk.columns[position], attribute)
        chunk.columns[position] = array  # drop the strings as soon as they are converted
        arrays.append(array)
        for index, reason in bad.items():
            reasons.setdefault(index, []).append(reason)
    _require_id(entity, arrays, reasons)
    if chunk.starts is None:
        first = chunk.first_line
        lines = pa.array(np.arange(first, first + chunk.row_count, dtype=np.int64))
    else:
        lines = pa.array(chunk.starts, pa.int64())
    placeholder = pa.nulls(chunk.row_count, pa.string())  # file and folder are set per file
    table = pa.Table.from_arrays([*arrays, placeholder, lines, placeholder], schema=schema)
    return table, reasons


def _require_id(entity: EntityModel, arrays: list[pa.Array], reasons: dict[int, list[str]]) -> None:
    if not entity.has_attribute(ID_COLUMN):
        return
    ids = arrays[entity.column_names.index(ID_COLUMN)]
    if ids.null_count == 0:
        return
    for index in pc.indices_nonzero(pc.is_null(ids)).to_pylist():
        if index not in reasons:  # a bad GUID already explains the null
            reasons[index] = [f"column {ID_COLUMN!r} (guid): missing; every exported row has one"]


def _shown(raw: str) -> str:
    if _UNDECODABLE.search(raw):
        raw = raw.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    if len(raw) > _MAX_RAW_CHARS:
        return raw[:_MAX_RAW_CHARS] + f"… [{len(raw) - _MAX_RAW_CHARS} more characters]"
    return raw


def _concat(results: list[ReadResult], entity: EntityModel) -> ReadResult:
    schema = arrow_schema(entity, include_ingestion_columns=True)
    if not results:
        return ReadResult(schema.empty_table(), [])
    return ReadResult(
        pa.concat_tables([result.table for result in results]),
        [row for result in results for row in result.rejected],
        [row for result in results for row in result.held_back],
        [row for result in results for row in result.files_set_aside],
    )
