"""customer360.churn loads its public names on first use (PEP 562): the name → module table,
`__all__` (which ruff reads for the type-checking imports) and the modules must agree."""

import importlib

import customer360.churn as churn


def test_every_public_name_is_in_the_table_and_resolves_from_its_module():
    assert sorted(churn._WHERE) == sorted(churn.__all__)
    for name, module in churn._WHERE.items():
        defined = getattr(importlib.import_module(f"customer360.churn.{module}"), name)
        assert getattr(churn, name) is defined, name
