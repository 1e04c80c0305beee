"""Every partitions definition of the graph, defined once and imported everywhere."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import dagster as dg

#: One partition per Synapse Link incremental export folder (`2024-01-05T10.15.00Z`), or per day
#: of `SinkModifiedOn` (`2024-01-05`) for the non-incremental layout.
dataverse_exports = dg.DynamicPartitionsDefinition(name="dataverse_export")

#: One partition per day on which finance files were dropped in landing/finance/.
finance_drops = dg.DynamicPartitionsDefinition(name="finance_drop")


def crm_drops(source: str) -> dg.DynamicPartitionsDefinition:
    """One partition per day on which a configured CSV source's files were dropped."""
    return _CRM_DROPS.setdefault(source, dg.DynamicPartitionsDefinition(name=f"crm_{source}_drop"))


_CRM_DROPS: dict[str, dg.DynamicPartitionsDefinition] = {}


def in_time_order(registered: Sequence[str], new: Iterable[str]) -> tuple[list[str], list[str]]:
    """(keys to delete, keys to add, in this order) so the registered keys end up sorted.

    Dagster lists dynamic partitions in the order they were added (the launch dialog, the
    partition bar). Every landing key sorts in time order as text (`2024-06-03T08.00.00Z`,
    `2024-06-03`, a drop day), so a key that arrives late, or a lake registered out of order
    before this existed, is fixed by taking back the registered keys after the first one out of
    place and adding them again with the new ones, sorted. Materialisations are kept (they are
    recorded by key, not by position)."""
    target = sorted(set(registered) | set(new))
    keep = 0
    while keep < len(registered) and keep < len(target) and registered[keep] == target[keep]:
        keep += 1
    return list(registered[keep:]), target[keep:]


def time_ordered_requests(
    partitions_def: dg.DynamicPartitionsDefinition, registered: Sequence[str], new: Iterable[str]
) -> list:
    """`in_time_order` as the dynamic-partition requests a sensor returns."""
    delete, add = in_time_order(registered, new)
    requests = [partitions_def.build_delete_request(delete)] if delete else []
    return requests + ([partitions_def.build_add_request(add)] if add else [])


def register_in_time_order(
    instance: dg.DagsterInstance, partitions_def: dg.DynamicPartitionsDefinition, new: Iterable[str]
) -> None:
    """`in_time_order` applied directly to an instance (`customer360 run`, no daemon)."""
    registered = instance.get_dynamic_partitions(partitions_def.name)
    delete, add = in_time_order(registered, new)
    for key in delete:
        instance.delete_dynamic_partition(partitions_def.name, key)
    if add:
        instance.add_dynamic_partitions(partitions_def.name, add)
