"""Why two records were merged or not: the blocking keys they share, each rule's comparisons
(values, similarity level, weight, share of the score), the rule's score against its
thresholds and the rule that decided — computed by the same functions a run uses (keys and
blocks from local, scores from pair_scoring), so the explanation cannot drift from the run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa

from customer360.unify import pair_scoring
from customer360.unify.blocking import block_passes, carried_fields
from customer360.unify.config import Comparison, UnifyConfig, load_config
from customer360.unify.local import block_index, keyed_records
from customer360.unify.schema import NODE_SEPARATOR, RECORD_COLUMNS
from customer360.unify.similarity import name_variants, similarity_values


def _level(comparison: Comparison, left: Any, right: Any, value: float | None) -> str:
    """A human name for the similarity level a comparison reached."""
    if value is None:
        return "missing (left out of the score)"
    if value == 1.0:
        return "equal"
    if comparison.method == "name_variant" and right in name_variants().get(left, ()):
        return "nickname or full form (name table)"
    if comparison.method in ("date", "date_near") and left and right:
        if left.year == right.year and left.month == right.day and left.day == right.month:
            return "day and month swapped"
        if comparison.method == "date_near" and abs((left - right).days) <= 10:
            return f"{abs((left - right).days)} days apart"
    if comparison.at_least is not None and value < comparison.at_least:
        return f"{comparison.method} {value} < at_least {comparison.at_least}: rules the pair out"
    return f"{comparison.method} {value}"


def _shown(block: str) -> str:
    """A block id without its rule and pass numbers, parts separated by ' | '."""
    return block.split(NODE_SEPARATOR, 2)[-1].replace(NODE_SEPARATOR, " | ")


def _shared_blocks(index: pa.Table, config: UnifyConfig) -> list[dict[str, str]]:
    rows = index.to_pylist()
    shared = []
    for name, rank, _, keys in block_passes(config.rules):
        left, right = rows[0][name], rows[1][name]
        if left is not None and left == right:
            shared.append({"rule": config.rules[rank].name, "blocking": ", ".join(keys),
                           "block": _shown(left)})  # fmt: skip
    return shared


def explain_pair(
    left: dict[str, Any], right: dict[str, Any], config: UnifyConfig | None = None
) -> dict[str, Any]:
    """Explain the pair of records `left` and `right` (dicts of schema.RECORD_COLUMNS).

    Returns `shared_blocks` (rule, blocking expressions, shared key: the pair is compared by a
    rule only through one of these; block sizes are not known here, see oversized_blocks),
    `rules` (per rule: compared, each comparison's field, values, similarity, level, weight and
    share of the score, required-equal checks, score, threshold, review_threshold, decision)
    and `decision`/`deciding_rule` (highest matching score, then the earliest rule; a pair no
    rule matches is `review` when some rule reviews it, else `no_match`)."""
    config = config or load_config()
    records = pa.Table.from_pylist(
        [{c: r.get(c) for c in RECORD_COLUMNS} for r in (left, right)],
        schema=_record_schema(),
    )
    keyed = keyed_records(records)
    shared = _shared_blocks(block_index(keyed, config.rules), config)
    fields = carried_fields(config.rules)
    one, two = keyed.to_pylist()
    pair = {f"l_{f}": one[f] for f in fields} | {f"r_{f}": two[f] for f in fields}
    compared_by = {b["rule"] for b in shared}
    explained = []
    for rank, rule in enumerate(config.rules):
        row = {"rule": rule.name, "rule_rank": rank, **pair}
        rows = pa.Table.from_pylist([row], _pair_schema(keyed, fields))
        result = pair_scoring.score(rows, config.rules).to_pylist()[0]
        comparisons = []
        total = sum(c.weight for c in rule.compare if pair[f"l_{c.field}"] is not None
                    and pair[f"r_{c.field}"] is not None)  # fmt: skip
        for c in rule.compare:
            a, b = pair[f"l_{c.field}"], pair[f"r_{c.field}"]
            value = similarity_values(c.method, pa.array([a]), pa.array([b]))[0]
            value = None if np.isnan(value) else float(value)
            comparisons.append({
                "field": c.field, "method": c.method, "left": a, "right": b,
                "similarity": value, "level": _level(c, a, b, value), "weight": c.weight,
                "share": round(value * c.weight / total, 4) if value is not None else None,
            })  # fmt: skip
        explained.append({
            "rule": rule.name, "compared": rule.name in compared_by,
            "require_equal": {f: pair[f"l_{f}"] is not None and pair[f"l_{f}"] == pair[f"r_{f}"]
                              for f in rule.require_equal},
            "comparisons": comparisons, "score": result["score"],
            "threshold": rule.threshold, "review_threshold": rule.review_threshold,
            "decision": result["decision"] if rule.name in compared_by else "not compared",
        })  # fmt: skip
    return {"shared_blocks": shared, "rules": explained, **_verdict(explained)}


def _verdict(explained: list[dict[str, Any]]) -> dict[str, Any]:
    matched = [r for r in explained if r["decision"] == "match"]
    if matched:
        best = min(matched, key=lambda r: -r["score"])  # ties: the earliest rule (stable)
        return {"decision": "match", "deciding_rule": best["rule"]}
    reviewed = [r for r in explained if r["decision"] == "review"]
    if reviewed:
        best = min(reviewed, key=lambda r: -r["score"])
        return {"decision": "review", "deciding_rule": best["rule"]}
    return {"decision": "no_match", "deciding_rule": None}


def _record_schema() -> pa.Schema:
    return pa.schema(
        [pa.field(c, pa.string()) for c in RECORD_COLUMNS[:-2]]
        + [pa.field("dateofbirth", pa.date32()),
           pa.field("modified_at", pa.timestamp("us", tz="UTC"))]
    )  # fmt: skip


def _pair_schema(keyed: pa.Table, fields: tuple[str, ...]) -> pa.Schema:
    types = {f: keyed.schema.field(f).type for f in fields}
    return pa.schema(
        [pa.field("rule", pa.string()), pa.field("rule_rank", pa.int32())]
        + [pa.field(f"l_{f}", types[f]) for f in fields]
        + [pa.field(f"r_{f}", types[f]) for f in fields]
    )


def _text(value: Any) -> str:
    return repr(value) if isinstance(value, str) or value is None else str(value)


def format_explanation(explained: dict[str, Any]) -> str:
    """explain_pair's result as text, one line per comparison (a waterfall of the score)."""
    lines = [
        f"decision: {explained['decision']}"
        + (f" (rule {explained['deciding_rule']})" if explained["deciding_rule"] else "")
    ]
    lines.append("shared blocking keys:" if explained["shared_blocks"] else
                 "shared blocking keys: none (no rule compares this pair)")  # fmt: skip
    lines += [
        f"  {b['rule']}: [{b['blocking']}] = {b['block']}" for b in explained["shared_blocks"]
    ]
    for rule in explained["rules"]:
        head = f"{rule['rule']}: {rule['decision']}"
        if rule["score"] is not None:
            head += f", score {rule['score']} (match ≥ {rule['threshold']}"
            head += f", review ≥ {rule['review_threshold']})" if rule["review_threshold"] else ")"
        lines.append(head)
        lines += [f"  require equal {f}: {'yes' if ok else 'no'}"
                  for f, ok in rule["require_equal"].items()]  # fmt: skip
        for c in rule["comparisons"]:
            lines.append(f"  {c['field']}: {_text(c['left'])} vs {_text(c['right'])} → "
                         f"{c['level']}, weight {c['weight']}, share {c['share']}")  # fmt: skip
    return "\n".join(lines)


def explain_references(
    left: str,
    right: str,
    load_records: Callable[[pa.Table], pa.Table],
    config: UnifyConfig | None = None,
) -> str:
    """format_explanation for two records named `source/key`; `load_records(keys)` returns
    the records (schema.RECORD_COLUMNS) of a (source, source_key) table. A name that is not
    found raises ValueError naming it."""
    refs = [tuple(ref.split("/", 1)) for ref in (left, right)]
    if any(len(r) != 2 for r in refs):
        raise ValueError(f"name records as SOURCE/KEY, not {left!r} {right!r}")
    keys = pa.table({"source": [r[0] for r in refs], "source_key": [r[1] for r in refs]})
    rows = {(r["source"], r["source_key"]): r for r in load_records(keys).to_pylist()}
    missing = [f"{s}/{k}" for s, k in refs if (s, k) not in rows]
    if missing:
        raise ValueError(f"no record {', '.join(missing)} in the sources")
    return format_explanation(explain_pair(rows[refs[0]], rows[refs[1]], config))
