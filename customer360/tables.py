"""Names shared by bronze and silver: the Dataverse customer table and the bronze bookkeeping."""

CUSTOMER_TABLE = "crc33_customer"
PUBLISHER_PREFIX = "crc33_"
#: Bronze's partition column: the Synapse Link folder or file-drop day a row came from.
PARTITION_COLUMN = "_partition"
#: Ingestion bookkeeping that stays in bronze.
BRONZE_ONLY = (PARTITION_COLUMN, "_ingested_at", "IsDelete", "SinkCreatedOn")
