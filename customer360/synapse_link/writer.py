"""Write the Synapse Link export format: append-only CSV partitions, model.json, manifests.

Used by the local Dataverse emulator and the data generator, so that the lake side is tested
against the same layout Synapse Link produces in Azure.
"""

from __future__ import annotations

import math
import os
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal, InvalidOperation, localcontext
from pathlib import Path

from customer360.synapse_link.layout import (
    COMPLETE_ANNOTATION,
    MANIFEST_FOLDER,
    MANIFEST_SUFFIX,
    MODEL_JSON,
    folder_name,
    folder_time,
)
from customer360.synapse_link.model import (
    CREATED_ON,
    ID_COLUMN,
    IS_DELETE,
    PARTITION_GRANULARITIES,
    SINK_CREATED_ON,
    SINK_MODIFIED_ON,
    SINK_TIMESTAMP_COLUMNS,
    VERSION_NUMBER,
    Attribute,
    EntityModel,
    SynapseLinkFormatError,
    entity_to_json,
    model_json_document,
    parse_model_json,
)
from customer360.synapse_link.timestamps import format_iso_timestamp, format_sink_timestamp

Row = Mapping[str, object]
Changes = Mapping[str, tuple[EntityModel, Sequence[Row]]]

_NEEDS_QUOTES = re.compile(r'[",\r\n]').search
_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_INT_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}


class SynapseLinkWriter:
    """Append exported rows under ``root`` in the Synapse Link layout.

    ``incremental=True``: each :meth:`write` creates ``<root>/<yyyy-MM-ddTHH.mm.ssZ>/`` with
    ``<table>/<partition>.csv`` and a ``model.json`` written last, atomically, carrying the
    ``customer360:ExportComplete`` annotation (see ``layout.py`` for the completeness rule).
    ``incremental=False``: rows are appended to ``<root>/<table>/<partition>.csv`` and the root
    ``model.json`` is rewritten. Both modes (re)write the per-table manifests
    ``Microsoft.Athena.TrickleFeedService/<table>-model.json``.

    ``line_terminator`` defaults to LF, as in the Synapse Link fixtures of
    SneaksAndData/arcane-stream-microsoft-synapse-link; pass ``"\\r\\n"`` for CRLF.
    """

    def __init__(
        self, root: str | Path, *, incremental: bool = True, line_terminator: str = "\n"
    ) -> None:
        if line_terminator not in ("\n", "\r\n"):
            raise ValueError("line_terminator must be '\\n' or '\\r\\n'")
        self.root = Path(root)
        self.incremental = incremental
        self.line_terminator = line_terminator

    def write(self, changes: Changes, *, export_time: datetime) -> str:
        """Export ``changes`` ({table: (model, rows)}) as of ``export_time`` (tz-aware).

        Rows are dicts keyed by attribute name; missing keys are null, ``SinkCreatedOn`` and
        ``SinkModifiedOn`` default to ``export_time``. Returns the folder written, relative to
        the root: the incremental folder name, or ``""`` for the root layout.
        """
        name = folder_name(export_time)  # validates the time zone
        prepared = {
            table: (model, self._partition_lines(table, model, rows, export_time))
            for table, (model, rows) in changes.items()
        }
        for table, (model, _) in prepared.items():
            self._check_evolution(table, model)

        self.root.mkdir(parents=True, exist_ok=True)
        relative = name if self.incremental else ""
        folder = self.root / relative if relative else self.root
        if self.incremental:
            self._check_newest(name)
            try:
                folder.mkdir()
            except FileExistsError:
                raise FileExistsError(
                    f"incremental folder {folder} already exists; one write per export_time"
                ) from None

        for table, (_, partitions) in prepared.items():
            for partition, lines in sorted(partitions.items()):
                table_folder = folder / table
                table_folder.mkdir(exist_ok=True)
                with open(
                    table_folder / f"{partition}.csv", "a", encoding="utf-8", newline=""
                ) as f:
                    f.write("".join(lines))

        models = {table: model for table, (model, _) in prepared.items()}
        self._write_manifests(models, export_time)
        self._write_folder_model(folder, relative, models, export_time)
        return relative

    @staticmethod
    def delete_row(entity: EntityModel, id: str, versionnumber: int, when: datetime) -> dict:
        """The append-only delete marker: ``Id``, Sink timestamps, ``versionnumber`` and
        ``IsDelete=True``; every other column empty."""
        for required in (ID_COLUMN, SINK_CREATED_ON, SINK_MODIFIED_ON, VERSION_NUMBER, IS_DELETE):
            if not entity.has_attribute(required):
                raise ValueError(f"entity {entity.name!r} has no {required!r} column")
        return {
            ID_COLUMN: id,
            SINK_CREATED_ON: when,
            SINK_MODIFIED_ON: when,
            VERSION_NUMBER: versionnumber,
            IS_DELETE: True,
        }

    # -----------------------------------------------------------------------------------------

    def _partition_lines(
        self, table: str, model: EntityModel, rows: Sequence[Row], export_time: datetime
    ) -> dict[str, list[str]]:
        if table != model.name:
            raise ValueError(f"changes key {table!r} does not match model name {model.name!r}")
        if model.partition_granularity not in PARTITION_GRANULARITIES:
            raise ValueError(
                f"table {table!r}: partition granularity {model.partition_granularity!r} "
                f"is not one of {sorted(PARTITION_GRANULARITIES)}"
            )
        names = model.column_names
        known = set(names)
        formatters = [_formatter(attribute) for attribute in model.attributes]
        partition_column = CREATED_ON if CREATED_ON in known else SINK_CREATED_ON
        result: dict[str, list[str]] = {}
        for position, row in enumerate(rows):
            if not known.issuperset(row):
                unknown = [key for key in row if key not in known]
                raise ValueError(f"table {table!r} row {position}: unknown columns {unknown}")
            values = dict(row)
            for sink in SINK_TIMESTAMP_COLUMNS & known:
                if values.get(sink) is None:
                    values[sink] = export_time
            try:
                fields = [fmt(values.get(n)) for fmt, n in zip(formatters, names, strict=True)]
                partition = _partition(
                    values.get(partition_column) or values.get(SINK_CREATED_ON) or export_time,
                    model.partition_granularity,
                )
            except (TypeError, ValueError) as exc:
                raise ValueError(f"table {table!r} row {position}: {exc}") from None
            result.setdefault(partition, []).append(",".join(fields) + self.line_terminator)
        return result

    def _check_newest(self, name: str) -> None:
        """Readers treat every folder older than the newest as finished: never write behind."""
        new_time = folder_time(name)
        for child in self.root.iterdir():
            existing = folder_time(child.name)
            if existing is not None and new_time is not None and existing > new_time:
                raise ValueError(
                    f"export_time {name} is older than the existing folder {child.name}; "
                    "incremental folders must be written in time order"
                )

    def _check_evolution(self, table: str, model: EntityModel) -> None:
        """Columns may only be appended: older files must stay readable with the new model."""
        manifest = self.root / MANIFEST_FOLDER / f"{table}{MANIFEST_SUFFIX}"
        if not manifest.exists():
            return
        previous = parse_model_json(manifest.read_bytes()).get(table)
        if previous is not None and not previous.is_prefix_of(model):
            raise SynapseLinkFormatError(
                f"table {table!r}: the new model must keep the exported columns in order and "
                f"only append new ones; exported {previous.column_names}, "
                f"new {model.column_names}"
            )

    def _write_manifests(self, models: Mapping[str, EntityModel], export_time: datetime) -> None:
        folder = self.root / MANIFEST_FOLDER
        folder.mkdir(exist_ok=True)
        for table, model in models.items():
            text = model_json_document(
                [entity_to_json(model, default_annotations=_sync_annotations(export_time))]
            )
            _atomic_write(folder / f"{table}{MANIFEST_SUFFIX}", text)

    def _write_folder_model(
        self,
        folder: Path,
        relative: str,
        models: Mapping[str, EntityModel],
        export_time: datetime,
    ) -> None:
        model_path = folder / MODEL_JSON
        entities: dict[str, EntityModel] = {}
        if not self.incremental and model_path.exists():
            entities.update(parse_model_json(model_path.read_bytes()))
        entities.update(models)
        documents = []
        for table, model in entities.items():
            table_folder = folder / table
            partitions = (
                sorted(p.stem for p in table_folder.glob("*.csv")) if table_folder.is_dir() else []
            )
            prefix = f"{relative}/{table}" if relative else table
            documents.append(
                entity_to_json(
                    model,
                    default_annotations=_sync_annotations(export_time),
                    partition_locations=[(p, f"{prefix}/{p}.csv") for p in partitions],
                )
            )
        annotations = {COMPLETE_ANNOTATION: "true"} if self.incremental else None
        _atomic_write(model_path, model_json_document(documents, annotations=annotations))


def _sync_annotations(export_time: datetime) -> dict[str, str]:
    """Entity annotations of a finished initial sync (the model's own values win)."""
    return {
        "Athena:InitialSyncState": "Completed",
        "Athena:InitialSyncDataCompletedTime": format_sink_timestamp(export_time),
    }


def _atomic_write(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def _partition(value: object, granularity: str) -> str:
    if not isinstance(value, date):
        raise TypeError(f"partition column must be a datetime, got {type(value).__name__}")
    stamp = format_iso_timestamp(value, "partition")  # also rejects naive datetimes
    return stamp[:4] if granularity == "Year" else stamp[:7]


# ---------------------------------------------------------------------------------------------
# value formatting, one function per column, built once per write


Formatter = Callable[[object], str]


def _formatter(attribute: Attribute) -> Formatter:
    """The function that turns a Python value of this column into its CSV field text."""
    if attribute.name in SINK_TIMESTAMP_COLUMNS and attribute.data_type not in _BUILDERS:
        return _sink_formatter(attribute)
    build = _BUILDERS.get(attribute.data_type, _timestamp_formatter)
    return build(attribute)


def _wrong_type(attribute: Attribute, value: object, expected: str) -> TypeError:
    return TypeError(
        f"column {attribute.name!r} ({attribute.data_type}): expected {expected}, got {value!r}"
    )


def _string_formatter(attribute: Attribute) -> Formatter:
    name, max_length = attribute.name, attribute.max_length

    def fmt_string(value: object) -> str:
        if value is None:
            return ""
        if not isinstance(value, str):
            raise _wrong_type(attribute, value, "str")
        if 0 < max_length < len(value):
            raise ValueError(f"column {name!r}: {len(value)} characters > maxLength {max_length}")
        if _NEEDS_QUOTES(value):
            return '"' + value.replace('"', '""') + '"'
        return value

    return fmt_string


def _guid_formatter(attribute: Attribute) -> Formatter:
    def fmt_guid(value: object) -> str:
        if value is None:
            return ""
        if isinstance(value, uuid.UUID):
            return str(value)
        if not isinstance(value, str) or not _GUID.fullmatch(value):
            raise _wrong_type(attribute, value, "a GUID")
        return value.lower()

    return fmt_guid


def _int_formatter(attribute: Attribute) -> Formatter:
    name, data_type = attribute.name, attribute.data_type
    low, high = _INT_RANGES[data_type]

    def fmt_int(value: object) -> str:
        if value is None:
            return ""
        if isinstance(value, bool) or not isinstance(value, int):
            raise _wrong_type(attribute, value, "int")
        if not low <= value <= high:
            raise ValueError(f"column {name!r}: {value} out of range for {data_type}")
        return str(value)

    return fmt_int


def _decimal_formatter(attribute: Attribute) -> Formatter:
    name = attribute.name
    precision, scale = attribute.decimal_precision_scale

    def fmt_decimal(value: object) -> str:
        if value is None:
            return ""
        if isinstance(value, bool) or not isinstance(value, Decimal | int | float):
            raise _wrong_type(attribute, value, "Decimal")
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
        with localcontext() as context:
            context.prec = 200
            try:
                exact = number.quantize(Decimal(1).scaleb(-scale)) == number
            except InvalidOperation:
                exact = False
            if not number.is_finite() or not exact:
                raise ValueError(f"column {name!r}: {value} has more than {scale} decimals")
            if abs(number) >= Decimal(10) ** (precision - scale):
                raise ValueError(f"column {name!r}: {value} does not fit {precision},{scale}")
        return format(number, "f")

    return fmt_decimal


def _double_formatter(attribute: Attribute) -> Formatter:
    def fmt_double(value: object) -> str:
        if value is None:
            return ""
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _wrong_type(attribute, value, "float")
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(f"column {attribute.name!r}: {value} is not finite")
        return repr(number)

    return fmt_double


def _boolean_formatter(attribute: Attribute) -> Formatter:
    def fmt_boolean(value: object) -> str:
        if value is None:
            return ""
        if not isinstance(value, bool):
            raise _wrong_type(attribute, value, "bool")
        return "True" if value else "False"

    return fmt_boolean


def _sink_formatter(attribute: Attribute) -> Formatter:
    def fmt_sink(value: object) -> str:
        if value is None:
            return ""
        if not isinstance(value, date):
            raise _wrong_type(attribute, value, "datetime")
        return format_sink_timestamp(value, attribute.name)

    return fmt_sink


def _timestamp_formatter(attribute: Attribute) -> Formatter:
    offset = attribute.data_type == "dateTimeOffset"

    def fmt_timestamp(value: object) -> str:
        if value is None:
            return ""
        if not isinstance(value, date):
            raise _wrong_type(attribute, value, "datetime")
        return format_iso_timestamp(value, attribute.name, offset=offset)

    return fmt_timestamp


_BUILDERS: dict[str, Callable[[Attribute], Formatter]] = {
    "string": _string_formatter,
    "guid": _guid_formatter,
    "int32": _int_formatter,
    "int64": _int_formatter,
    "decimal": _decimal_formatter,
    "double": _double_formatter,
    "boolean": _boolean_formatter,
}
