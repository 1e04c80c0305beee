"""The unify configuration (match_rules.yaml) as validated, frozen dataclasses."""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from customer360.unify.schema import RECORD_ATTRIBUTES, check_source_name

DEFAULT_CONFIG = Path(__file__).with_name("match_rules.yaml")
METHODS = (
    "exact", "levenshtein", "token_sort", "date", "jaro_winkler", "name_variant", "date_near",
)  # fmt: skip
DATE_FIELDS = ("dateofbirth",)  # the record attributes typed as dates (schema.RECORD_DDL)
STRATEGIES = ("most_recent", "source_priority", "most_complete", "most_frequent")


@dataclass(frozen=True)
class Comparison:
    """One weighted similarity in a rule's score (0..1; null when either side is null)."""

    field: str
    method: str
    weight: float = 1.0
    # A similarity under this, or a side missing, rules the pair out: no score, no_match.
    at_least: float | None = None


@dataclass(frozen=True)
class MatchRule:
    """Pairs that share a blocking key and agree on `require_equal` are scored; score ≥
    `threshold` is a match, `review_threshold` ≤ score < `threshold` goes to human review."""

    name: str
    blocking: tuple[tuple[str, ...], ...]
    require_equal: tuple[str, ...] = ()
    compare: tuple[Comparison, ...] = ()
    threshold: float = 1.0
    review_threshold: float | None = None
    description: str = ""
    max_block_size: int = 500
    # `max_value_count` in the YAML: max_block_size is a value's frequency limit (name-frequency
    # weighting), so a block over it holds a common value, not an oversized block to report.
    counts_values: bool = False

    @property
    def fields(self) -> tuple[str, ...]:
        """Match-key columns the rule reads when scoring."""
        names = [*self.require_equal, *(c.field for c in self.compare)]
        return tuple(dict.fromkeys(names))


@dataclass(frozen=True)
class SurvivorshipGroup:
    name: str
    columns: tuple[str, ...]
    strategy: str


@dataclass(frozen=True)
class Survivorship:
    groups: tuple[SurvivorshipGroup, ...]
    source_priority: tuple[str, ...] = ()  # earlier wins; unlisted sources rank after all listed


@dataclass(frozen=True)
class CsvSourceMapping:
    """How one CSV export maps to the silver columns: `columns` is target → CSV header name.

    `key` is the header of the source key column, `modified` the header of the record's
    last-modified (or created) date, if the file has one. Header names match case-insensitively.
    """

    source: str
    key: str
    columns: Mapping[str, str] = field(default_factory=dict)
    modified: str | None = None
    required: tuple[str, ...] = ()  # targets that must not be blank (the key always must)
    date_columns: tuple[str, ...] = ("dateofbirth",)  # targets that must be ISO dates if set
    landing: str | None = None  # the landing area (folder under landing/) its files drop in

    @property
    def landing_area(self) -> str:
        return self.landing or self.source


@dataclass(frozen=True)
class SourceConfig:
    name: str
    description: str = ""
    csv: CsvSourceMapping | None = None


@dataclass(frozen=True)
class UnifyConfig:
    rules: tuple[MatchRule, ...]
    survivorship: Survivorship
    sources: tuple[SourceConfig, ...]
    id_namespace: uuid.UUID
    # The merge-rate check warns when the rate moves by more than this between two runs.
    max_merge_rate_change: float = 0.02

    @property
    def csv_sources(self) -> tuple[CsvSourceMapping, ...]:
        return tuple(s.csv for s in self.sources if s.csv is not None)

    def source(self, name: str) -> SourceConfig:
        for source in self.sources:
            if source.name == name:
                return source
        raise KeyError(f"no source {name!r} in the unify configuration")


def _rule(raw: dict[str, Any], max_block_size: int) -> MatchRule:
    name = raw["name"]
    compare = tuple(
        Comparison(
            c["field"],
            c["method"],
            float(c.get("weight", 1.0)),
            float(c["at_least"]) if c.get("at_least") is not None else None,
        )
        for c in raw.get("compare") or ()
    )
    blocking = tuple(tuple(str(e) for e in keys) for keys in raw["blocking"])
    rule = MatchRule(
        name=name,
        blocking=blocking,
        require_equal=tuple(raw.get("require_equal") or ()),
        compare=compare,
        threshold=float(raw.get("threshold", 1.0)),
        review_threshold=(
            float(raw["review_threshold"]) if raw.get("review_threshold") is not None else None
        ),
        description=str(raw.get("description", "")),
        max_block_size=int(raw.get("max_value_count", raw.get("max_block_size", max_block_size))),
        counts_values=raw.get("max_value_count") is not None,
    )
    problems = []
    if not rule.blocking or any(not keys for keys in rule.blocking):
        problems.append("needs at least one non-empty blocking key list")
    if not rule.require_equal and not rule.compare:
        problems.append("needs require_equal or compare")
    problems += [f"unknown method {c.method!r}" for c in compare if c.method not in METHODS]
    problems += [f"weight of {c.field} must be > 0" for c in compare if c.weight <= 0]
    problems += [
        f"method date compares dates: {c.field} is not one (use dateofbirth)"
        for c in compare
        if c.method in ("date", "date_near") and c.field not in DATE_FIELDS
    ]
    if not 0 < rule.threshold <= 1:
        problems.append(f"threshold {rule.threshold} must be in (0, 1]")
    review = rule.review_threshold
    if review is not None and not 0 <= review < rule.threshold:
        problems.append(f"review_threshold {review} must be in [0, threshold)")
    if rule.max_block_size < 2:
        problems.append("max_block_size must be at least 2")
    if problems:
        raise ValueError(f"rule {name!r}: " + "; ".join(problems))
    return rule


def _survivorship(raw: dict[str, Any], sources: tuple[str, ...]) -> Survivorship:
    groups = tuple(
        SurvivorshipGroup(g["name"], tuple(g["columns"]), g["strategy"]) for g in raw["groups"]
    )
    problems = [f"group {g.name!r}: unknown strategy {g.strategy!r}" for g in groups
                if g.strategy not in STRATEGIES]  # fmt: skip
    seen: dict[str, str] = {}
    for group in groups:
        for column in group.columns:
            if column not in RECORD_ATTRIBUTES:
                problems.append(f"group {group.name!r}: {column!r} is not a record attribute")
            elif column in seen:
                problems.append(f"{column!r} is in groups {seen[column]!r} and {group.name!r}")
            seen.setdefault(column, group.name)
    missing = [c for c in RECORD_ATTRIBUTES if c not in seen]
    if missing:
        problems.append(f"attributes in no group: {missing}")
    if len({g.name for g in groups}) != len(groups):
        problems.append("group names must be unique")
    if problems:
        raise ValueError("survivorship: " + "; ".join(problems))
    return Survivorship(groups=groups, source_priority=sources)


def _source(raw: dict[str, Any]) -> SourceConfig:
    name = check_source_name(raw["name"])
    csv_raw = raw.get("csv")
    mapping = None
    if csv_raw is not None:
        mapping = CsvSourceMapping(
            source=name,
            key=csv_raw["key"],
            columns=dict(csv_raw.get("columns") or {}),
            modified=csv_raw.get("modified"),
            required=tuple(csv_raw.get("required") or ()),
            date_columns=tuple(csv_raw.get("date_columns") or ("dateofbirth",)),
            landing=csv_raw.get("landing"),
        )
    return SourceConfig(name=name, description=str(raw.get("description", "")), csv=mapping)


def parse_config(raw: dict[str, Any], origin: str = "<config>") -> UnifyConfig:
    """Validate a configuration dict (the YAML's content); errors name `origin` and the rule."""
    try:
        sources = tuple(_source(s) for s in raw["sources"])
        names = tuple(s.name for s in sources)
        if len(set(names)) != len(names):
            raise ValueError(f"source names must be unique: {names}")
        matching = raw["matching"]
        max_block = int(matching.get("max_block_size", 500))
        rules = tuple(_rule(r, max_block) for r in matching["rules"])
        if len({r.name for r in rules}) != len(rules):
            raise ValueError("rule names must be unique")
        change = float((raw.get("quality") or {}).get("max_merge_rate_change", 0.02))
        if not 0 <= change <= 1:
            raise ValueError(f"quality.max_merge_rate_change {change} must be in [0, 1]")
        return UnifyConfig(
            rules=rules,
            survivorship=_survivorship(raw["survivorship"], names),
            sources=sources,
            id_namespace=uuid.UUID(str(raw["id_namespace"])),
            max_merge_rate_change=change,
        )
    except KeyError as exc:
        raise ValueError(f"{origin}: missing key {exc}") from None
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{origin}: {exc}") from None


def load_config(path: str | Path = DEFAULT_CONFIG) -> UnifyConfig:
    """Read and validate match_rules.yaml (or another file with the same layout)."""
    raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: not a YAML mapping")
    return parse_config(raw, str(path))


#: `C360_UNIFY_CONFIG` points the graph at another match_rules.yaml (same layout).
CONFIG_ENV = "C360_UNIFY_CONFIG"


def config_path() -> Path:
    return Path(os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG)


def unify_config() -> UnifyConfig:
    """The configuration the Dagster graph uses: C360_UNIFY_CONFIG or the package's file."""
    return load_config(config_path())
