"""maxLength from model.json, checked where the model is known (bronze) and enforced in silver.

Bronze keeps every value as exported (it is the raw layer); it records, per row, which text
columns exceed their model.json ``maxLength`` in ``_max_length_exceeded`` (null when none), so
silver can quarantine the row with that reason without knowing the export's model.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from customer360.synapse_link import EntityModel

MAX_LENGTH_COLUMN = "_max_length_exceeded"


def max_length_violations(table: pa.Table, model: EntityModel) -> pa.Array:
    """Per row: null, or `column 'x': N characters, maxLength M` for each text column of
    ``model`` longer than its ``maxLength`` (Dataverse counts characters), joined by '; '."""
    problems = []
    for attribute in model.attributes:
        if attribute.data_type != "string" or attribute.max_length <= 0:
            continue
        if attribute.name not in table.column_names:
            continue
        values = table[attribute.name].combine_chunks()
        lengths = pc.utf8_length(values)
        too_long = pc.fill_null(pc.greater(lengths, attribute.max_length), False)
        if not pc.any(too_long).as_py():
            continue
        text = pc.binary_join_element_wise(
            f"column '{attribute.name}': ",
            pc.cast(lengths, pa.string()),
            f" characters, maxLength {attribute.max_length}",
            "",
        )
        problems.append(pc.if_else(too_long, text, pa.scalar(None, pa.string())))
    if not problems:
        return pa.nulls(table.num_rows, pa.string())
    if len(problems) == 1:
        return problems[0]
    # Join the non-null reasons: '; ' between them, nothing for the nulls.
    joined = pc.binary_join_element_wise(
        *[pc.fill_null(p, "") for p in problems], "; ", null_handling="skip"
    )
    joined = pc.replace_substring_regex(joined, r"^(; )+|(; )+$", "")
    joined = pc.replace_substring_regex(joined, r"(; ){2,}", "; ")
    return pc.if_else(pc.equal(joined, ""), pa.scalar(None, pa.string()), joined)
