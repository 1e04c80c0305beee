"""Where things are in an export root: layouts, incremental folders, manifests, partition files.

Two layouts (reference/dataverse.md §8), possibly both in one root:

- root layout: ``model.json`` + ``<table>/<partition>.csv`` at the root → one
  ``ExportFolder(name="")``, always complete;
- incremental layout: one folder per interval named by its UTC time, ``yyyy-MM-ddTHH.mm.ssZ``,
  each with its own ``model.json`` and ``<table>/<partition>.csv``.

When a folder's ``model.json`` is missing, the per-table manifests
``Microsoft.Athena.TrickleFeedService/<table>-model.json`` describe its tables.

Completeness rule for an incremental folder: it has a ``model.json`` (Synapse Link writes it when
the folder is done; a folder without one is in progress and never read) and that ``model.json``
carries the model-level annotation ``customer360:ExportComplete = true`` (our writer writes it,
in the model.json it writes last) or a newer incremental folder exists (Synapse Link starts the
next folder only after finishing the previous one, so readers skip only the newest one).

A finished folder whose ``model.json`` (or a manifest it needs) cannot be parsed is listed with
``error`` set and no tables: its partition fails with that message, the other folders are read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from customer360.synapse_link.filesystem import LandingFileSystem, join
from customer360.synapse_link.model import (
    EntityModel,
    SynapseLinkFormatError,
    model_annotations,
    parse_model_json,
)

MODEL_JSON = "model.json"
MANIFEST_FOLDER = "Microsoft.Athena.TrickleFeedService"
MANIFEST_SUFFIX = "-model.json"
COMPLETE_ANNOTATION = "customer360:ExportComplete"
FOLDER_TIME_FORMAT = "%Y-%m-%dT%H.%M.%SZ"

# Root folders Synapse Link writes that are not tables.
NON_TABLE_FOLDERS = frozenset(
    {MANIFEST_FOLDER, "OptionsetMetadata", "Changelog", "EntitySyncFailure", "deltalake"}
)
# Real folders look like 2025-01-01T00.00.00Z; the docs' yyyy-MM-ddTHH:mm:ss.SSSZ is accepted too.
_FOLDER_NAME = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2})[.:](\d{2})[.:](\d{2})(?:\.(\d{1,7}))?Z")


@dataclass(frozen=True)
class ExportFolder:
    """One unit of export: an incremental folder, or the root layout (``name == ""``)."""

    name: str
    is_complete: bool
    entities: dict[str, EntityModel] = field(hash=False)
    # Table folders with CSV files that neither model.json nor a manifest describes: unreadable,
    # so callers should report them rather than let them pass unnoticed.
    unmodelled_tables: tuple[str, ...] = ()
    # Why the folder cannot be read (its model.json or a manifest is invalid), naming the file
    # and the problem; None when it can. Listing never raises for one bad folder.
    error: str | None = None

    @property
    def exported_at(self) -> datetime | None:
        """The UTC time in the folder name (None for the root layout)."""
        return folder_time(self.name)


def folder_name(export_time: datetime) -> str:
    """The incremental folder name for an export time (UTC, ``yyyy-MM-ddTHH.mm.ssZ``)."""
    if export_time.tzinfo is None or export_time.utcoffset() is None:
        raise ValueError(f"export_time must be timezone-aware, got {export_time!r}")
    return export_time.astimezone(UTC).strftime(FOLDER_TIME_FORMAT)


def folder_time(name: str) -> datetime | None:
    """Parse an incremental folder name; None when ``name`` is not one."""
    match = _FOLDER_NAME.fullmatch(name)
    if not match:
        return None
    year, month, day, hour, minute, second, fraction = match.groups()
    try:
        return datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            int(second),
            int((fraction or "0")[:6].ljust(6, "0")),
            tzinfo=UTC,
        )
    except ValueError:
        return None


@dataclass(frozen=True)
class Manifests:
    """The per-table manifests: the models that parse, and table → error for those that do not."""

    models: dict[str, EntityModel]
    errors: dict[str, str] = field(default_factory=dict)

    def fill(self, entities: dict[str, EntityModel], table_dirs: list[str]) -> str | None:
        """Add the manifest model of every table folder ``entities`` lacks; the error of a
        needed manifest that is invalid, if any."""
        errors = []
        for table in table_dirs:
            if table in entities:
                continue
            if table in self.models:
                entities[table] = self.models[table]
            elif table in self.errors:
                errors.append(self.errors[table])
        return "; ".join(errors) or None


def load_manifests(fs: LandingFileSystem) -> Manifests:
    """Entities from ``Microsoft.Athena.TrickleFeedService/<table>-model.json`` (may be empty);
    an invalid manifest is kept as an error of its table (only the folders needing it fail)."""
    if not fs.is_dir(MANIFEST_FOLDER):
        return Manifests({})
    result = Manifests({})
    for name in fs.list_dir(MANIFEST_FOLDER):
        if not name.endswith(MANIFEST_SUFFIX):
            continue
        path = join(MANIFEST_FOLDER, name)
        table = name[: -len(MANIFEST_SUFFIX)]
        try:
            entities = parse_model_json(fs.read_bytes(path))
        except SynapseLinkFormatError as exc:
            result.errors[table] = f"{path}: {exc}"
            continue
        if table in entities:
            result.models[table] = entities[table]
        elif len(entities) == 1:
            result.models[table] = next(iter(entities.values()))
        else:
            result.errors[table] = f"{path} does not describe table {table!r}"
    return result


def list_export_folders(
    fs: LandingFileSystem, *, include_incomplete: bool = False
) -> list[ExportFolder]:
    """The export folders of a root, oldest first (the root layout, if any, comes first)."""
    if not fs.is_dir(""):
        return []  # nothing exported yet
    children = fs.list_dir("")
    manifests = load_manifests(fs)
    result: list[ExportFolder] = []

    root = _root_folder(fs, children, manifests)
    if root is not None:
        result.append(root)

    timed = sorted(
        (time, name)
        for name in children
        if (time := folder_time(name)) is not None and fs.is_dir(name)
    )
    for position, (_, name) in enumerate(timed):
        has_newer = position < len(timed) - 1
        folder = _incremental_folder(fs, name, manifests, has_newer=has_newer)
        if folder.is_complete or include_incomplete:
            result.append(folder)
    return result


def entity_files(fs: LandingFileSystem, folder: ExportFolder, entity: str) -> list[str]:
    """The CSV partition files of one table in one folder (paths relative to the root), sorted.

    Only direct ``*.csv`` children count: the hourly snapshot sub-folder of the root layout holds
    copies of the same rows.
    """
    table_path = join(folder.name, entity)
    if not fs.is_dir(table_path):
        return []
    return [
        join(table_path, name)
        for name in sorted(fs.list_dir(table_path))
        if name.lower().endswith(".csv") and not fs.is_dir(join(table_path, name))
    ]


def _root_folder(
    fs: LandingFileSystem, children: list[str], manifests: Manifests
) -> ExportFolder | None:
    table_dirs = [
        name
        for name in children
        if name not in NON_TABLE_FOLDERS and folder_time(name) is None and fs.is_dir(name)
    ]
    entities: dict[str, EntityModel] = {}
    if MODEL_JSON in children:
        try:
            entities = parse_model_json(fs.read_bytes(MODEL_JSON))
        except SynapseLinkFormatError as exc:
            return ExportFolder("", True, {}, error=f"{MODEL_JSON}: {exc}")
    error = manifests.fill(entities, table_dirs)  # tables the root model does not list yet
    if not entities and MODEL_JSON not in children and error is None:
        return None
    return ExportFolder(
        name="",
        is_complete=True,
        entities=entities,
        unmodelled_tables=_unmodelled(fs, "", table_dirs, entities),
        error=error,
    )


def _incremental_folder(
    fs: LandingFileSystem, name: str, manifests: Manifests, *, has_newer: bool
) -> ExportFolder:
    """One timestamp folder. Without a model.json it is still being written (never read);
    with an unparsable one it is either being written (the newest) or broken (an older one)."""
    model_path = join(name, MODEL_JSON)
    table_dirs = [child for child in fs.list_dir(name) if fs.is_dir(join(name, child))]
    if not fs.exists(model_path):
        return ExportFolder(name, False, {})  # its tables are typed once model.json is there
    text = fs.read_bytes(model_path)
    try:
        entities = parse_model_json(text)
        marked_complete = (
            model_annotations(text).get(COMPLETE_ANNOTATION, "").strip().lower() == "true"
        )
    except SynapseLinkFormatError as exc:
        # The newest folder's model.json may be half-written; an older one is broken: its
        # partition must fail with this message (it must not pass unnoticed), the rest go on.
        error = f"{model_path}: {exc}" if has_newer else None
        return ExportFolder(name, has_newer, {}, error=error)
    error = manifests.fill(entities, table_dirs)
    return ExportFolder(
        name=name,
        is_complete=marked_complete or has_newer,
        entities=entities,
        unmodelled_tables=_unmodelled(fs, name, table_dirs, entities),
        error=error,
    )


def _unmodelled(
    fs: LandingFileSystem, folder: str, table_dirs: list[str], entities: dict[str, EntityModel]
) -> tuple[str, ...]:
    missing = []
    for table in table_dirs:
        if table in entities:
            continue
        path = join(folder, table)
        if any(child.lower().endswith(".csv") for child in fs.list_dir(path)):
            missing.append(table)
    return tuple(sorted(missing))
