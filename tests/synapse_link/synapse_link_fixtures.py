"""Hand-written Synapse Link export pieces shared by the synapse_link tests (literal bytes)."""

from __future__ import annotations

from pathlib import Path

# A model.json in the shape Synapse Link writes (reference/dataverse.md §8) with every CDM type.
ACCOUNT_MODEL_JSON = """{
  "name": "cdm", "description": "cdm", "version": "1.0",
  "entities": [{
    "$type": "LocalEntity", "name": "account", "description": "account",
    "annotations": [
      {"name": "Athena:PartitionGranularity", "value": "Year"},
      {"name": "Athena:InitialSyncState", "value": "Completed"},
      {"name": "Athena:InitialSyncDataCompletedTime", "value": "1/1/2020 0:00:00 PM"}
    ],
    "attributes": [
      {"name": "Id", "dataType": "guid", "maxLength": -1},
      {"name": "SinkCreatedOn", "dataType": "dateTime", "maxLength": -1},
      {"name": "SinkModifiedOn", "dataType": "dateTime", "maxLength": -1},
      {"name": "name", "dataType": "string", "maxLength": 160,
       "cdm:traits": [{"traitReference": "is.constrained",
                       "arguments": [{"name": "maximumLength", "value": 160}]}]},
      {"name": "revenue", "dataType": "decimal", "maxLength": -1,
       "cdm:traits": [{"traitReference": "is.dataFormat.numeric.shaped",
                       "arguments": [{"name": "precision", "value": 38},
                                     {"name": "scale", "value": 6}]}]},
      {"name": "ratio", "dataType": "double", "maxLength": -1},
      {"name": "employees", "dataType": "int32", "maxLength": -1},
      {"name": "versionnumber", "dataType": "int64", "maxLength": -1},
      {"name": "createdon", "dataType": "dateTimeOffset", "maxLength": -1},
      {"name": "modifiedon", "dataType": "dateTime", "maxLength": -1},
      {"name": "IsDelete", "dataType": "boolean", "maxLength": -1}
    ],
    "partitions": [{"name": "2020",
      "location": "https://acct.dfs.core.windows.net/dataverse-env-org/account/2020.csv"}]
  }]
}"""

ACCOUNT_COLUMNS = [
    "Id",
    "SinkCreatedOn",
    "SinkModifiedOn",
    "name",
    "revenue",
    "ratio",
    "employees",
    "versionnumber",
    "createdon",
    "modifiedon",
    "IsDelete",
]

ID1 = "10bff458-d47a-4924-804b-31c0a83108e6"
ID2 = "2b4bc74e-2132-4d8e-8572-48ce4260f182"
ID3 = "3ae2094d-cd17-42b4-891e-3b268e2b6713"
ID4 = "4633be9a-c485-4afa-8bb7-4ba380eaa206"


def contact_model_json(*, extra_columns: tuple[str, ...] = (), complete: bool | None = None) -> str:
    """A small ``contact`` model (Id, Sink*, fullname, versionnumber, IsDelete, extras...)."""
    extras = "".join(
        f',\n      {{"name": "{name}", "dataType": "string", "maxLength": -1}}'
        for name in extra_columns
    )
    annotations = ""
    if complete is not None:
        value = "true" if complete else "false"
        annotations = (
            f'"annotations": [{{"name": "customer360:ExportComplete", "value": "{value}"}}],'
        )
    return f"""{{"name": "cdm", "version": "1.0", {annotations}
  "entities": [{{"$type": "LocalEntity", "name": "contact",
    "annotations": [{{"name": "Athena:PartitionGranularity", "value": "Month"}}],
    "attributes": [
      {{"name": "Id", "dataType": "guid", "maxLength": -1}},
      {{"name": "SinkCreatedOn", "dataType": "dateTime", "maxLength": -1}},
      {{"name": "SinkModifiedOn", "dataType": "dateTime", "maxLength": -1}},
      {{"name": "fullname", "dataType": "string", "maxLength": 100}},
      {{"name": "versionnumber", "dataType": "int64", "maxLength": -1}},
      {{"name": "IsDelete", "dataType": "boolean", "maxLength": -1}}{extras}
    ],
    "partitions": []}}]}}"""


def put(root: Path, relative: str, data: bytes | str) -> Path:
    """Write a file under the export root, creating folders; str is written as UTF-8 as-is."""
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path
