"""Read and write the Azure Synapse Link for Dataverse export format (no Dagster here).

See docs/synapse_link.md for the layout, the completeness rule and the type mapping.
"""

from customer360.synapse_link.filesystem import LandingFileSystem, LocalFileSystem
from customer360.synapse_link.layout import (
    COMPLETE_ANNOTATION,
    MANIFEST_FOLDER,
    ExportFolder,
    entity_files,
    folder_name,
    list_export_folders,
)
from customer360.synapse_link.model import (
    Attribute,
    EntityModel,
    SynapseLinkFormatError,
    parse_model_json,
)
from customer360.synapse_link.reader import (
    ReadResult,
    RejectedRow,
    parse_entity_csv,
    read_entity,
    read_entity_folders,
)
from customer360.synapse_link.schema import (
    EXPORT_FOLDER_COLUMN,
    INGESTION_COLUMNS,
    SOURCE_FILE_COLUMN,
    SOURCE_LINE_COLUMN,
    arrow_schema,
    spark_schema,
)
from customer360.synapse_link.writer import SynapseLinkWriter

__all__ = [
    "COMPLETE_ANNOTATION",
    "EXPORT_FOLDER_COLUMN",
    "INGESTION_COLUMNS",
    "MANIFEST_FOLDER",
    "SOURCE_FILE_COLUMN",
    "SOURCE_LINE_COLUMN",
    "Attribute",
    "EntityModel",
    "ExportFolder",
    "LandingFileSystem",
    "LocalFileSystem",
    "ReadResult",
    "RejectedRow",
    "SynapseLinkFormatError",
    "SynapseLinkWriter",
    "arrow_schema",
    "entity_files",
    "folder_name",
    "list_export_folders",
    "parse_entity_csv",
    "parse_model_json",
    "read_entity",
    "read_entity_folders",
    "spark_schema",
]
