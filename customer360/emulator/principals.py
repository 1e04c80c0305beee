"""Seeded systemusers and teams: one systemuser per application user, a few people and teams.

Ids are derived from the tenant id, so they stay the same across resets of one C360_HOME.
"""

from __future__ import annotations

import uuid

from customer360.emulator.auth import ApplicationUser
from customer360.emulator.operations import Caller, DataService, RequestContext
from customer360.emulator.values import utc_now_text

PEOPLE = (
    ("alex.admin", "Alex", "Admin"),
    ("sam.sales", "Sam", "Sales"),
    ("riley.retention", "Riley", "Retention"),
)
# (key, name, teamtype, membershiptype or None); teamtype 0 owner, 1 access, 2 Entra group.
TEAMS = (
    ("default", "customer360", 0, None),
    ("sales", "Sales", 0, None),
    ("retention", "Retention (Entra group)", 2, 0),
    ("campaign", "Campaign access", 1, None),
)


def seeded_id(tenant_id: str, kind: str, key: str) -> str:
    return str(uuid.uuid5(uuid.UUID(tenant_id), f"{kind}/{key}"))


def system_caller(tenant_id: str) -> Caller:
    return Caller(seeded_id(tenant_id, "systemuser", "SYSTEM"), "SYSTEM", "")


def seed_principals(service: DataService, tenant_id: str, users: list[ApplicationUser]) -> None:
    """Create the seeded systemusers and teams that do not exist yet."""
    ctx = RequestContext(system_caller(tenant_id), utc_now_text())
    bu = service.business_unit_id
    rows: list[tuple[str, str, dict]] = []
    for user in users:
        rows.append(
            (
                "systemuser",
                user.systemuserid,
                {
                    "fullname": f"# {user.name}",
                    "applicationid": user.client_id,
                    "azureactivedirectoryobjectid": user.object_id,
                    "accessmode": 4,
                    "isdisabled": False,
                    "businessunitid": bu,
                },
            )
        )
    for key, first, last in PEOPLE:
        rows.append(
            (
                "systemuser",
                seeded_id(tenant_id, "systemuser", key),
                {
                    "fullname": f"{first} {last}",
                    "firstname": first,
                    "lastname": last,
                    "domainname": f"{key}@contoso.com",
                    "internalemailaddress": f"{key}@contoso.com",
                    "accessmode": 0,
                    "isdisabled": False,
                    "businessunitid": bu,
                },
            )
        )
    for key, name, team_type, membership in TEAMS:
        values: dict = {"name": name, "teamtype": team_type, "isdefault": key == "default"}
        values["businessunitid"] = bu
        if membership is not None:
            values["membershiptype"] = membership
            values["azureactivedirectoryobjectid"] = seeded_id(tenant_id, "entragroup", key)
        rows.append(("team", seeded_id(tenant_id, "team", key), values))
    with service.store.transaction():
        for table_name, record_id, values in rows:
            if service.store.get(table_name, record_id) is not None:
                continue
            table = service.schema.tables[table_name]
            service.create(ctx, table, dict(values), record_id=record_id)


def principal_ids(tenant_id: str) -> dict[str, str]:
    """Seeded people and teams by key (for docs and tests)."""
    ids = {f"user:{key}": seeded_id(tenant_id, "systemuser", key) for key, _, _ in PEOPLE}
    ids.update({f"team:{key}": seeded_id(tenant_id, "team", key) for key, *_ in TEAMS})
    return ids
