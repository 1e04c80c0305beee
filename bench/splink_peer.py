"""A Splink baseline on bench/unify.py's records (`--peer splink`): the field's probabilistic
linkage library (DuckDB backend), with a competent model written the way its tutorials do it:
name, date-of-birth, e-mail, phone and postcode comparisons with term-frequency adjustment on
the names, blocking on e-mail, phone and date of birth + name prefixes, u by random sampling,
m by expectation maximisation, then clusters at match probability 0.95. Timed end to end
(training included), like customer360's row. Splink is a dev-only dependency.
"""

from __future__ import annotations

import time

import pyarrow as pa
import pyarrow.compute as pc


def _arrow(relation) -> pa.Table:
    result = relation.arrow()  # a table, or a reader in newer DuckDB: drain it now
    return result.read_all() if isinstance(result, pa.RecordBatchReader) else result


def run_splink(table: pa.Table) -> tuple[float, dict, pa.Table, pa.Table]:
    """(seconds, figures, matched pairs (PAIR_KEYS), clusters (source, source_key, cluster))."""
    import splink.comparison_library as cl
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    data = table.drop_columns(["entity"])
    ids = [f"{s}/{k}" for s, k in zip(data["source"].to_pylist(),
                                       data["source_key"].to_pylist(), strict=True)]  # fmt: skip
    data = data.append_column("unique_id", pa.array(ids, pa.string()))
    data = data.set_column(data.schema.get_field_index("firstname"), "firstname",
                           pc.utf8_lower(data["firstname"]))  # fmt: skip
    data = data.set_column(data.schema.get_field_index("lastname"), "lastname",
                           pc.utf8_lower(data["lastname"]))  # fmt: skip
    started = time.perf_counter()
    db_api = DuckDBAPI()
    settings = SettingsCreator(
        link_type="dedupe_only",
        comparisons=[
            cl.NameComparison("firstname").configure(term_frequency_adjustments=True),
            cl.NameComparison("lastname").configure(term_frequency_adjustments=True),
            cl.DateOfBirthComparison("dateofbirth", input_is_string=False),
            cl.EmailComparison("email"),
            cl.ExactMatch("telephone_e164"),
            cl.PostcodeComparison("postcode"),
        ],
        blocking_rules_to_generate_predictions=[
            block_on("email"),
            block_on("telephone_e164"),
            block_on("dateofbirth", "substr(lastname, 1, 2)"),
            block_on("dateofbirth", "substr(firstname, 1, 2)"),
            block_on("firstname", "lastname"),
        ],
        retain_intermediate_calculation_columns=False,
        retain_matching_columns=False,
    )
    linker = Linker(db_api.register(data), settings)
    linker.training.estimate_probability_two_random_records_match(
        [block_on("email"), block_on("firstname", "lastname", "dateofbirth")], recall=0.7
    )
    linker.training.estimate_u_using_random_sampling(max_pairs=2e6, seed=1)
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("dateofbirth"))
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("email"))
    predictions = linker.inference.predict(threshold_match_probability=0.95)
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(predictions, 0.95)
    pairs = _arrow(predictions.as_duckdbpyrelation().select("unique_id_l, unique_id_r"))
    members = _arrow(clusters.as_duckdbpyrelation().select("unique_id, cluster_id"))
    elapsed = time.perf_counter() - started

    def split(column: pa.ChunkedArray) -> tuple[list[str], list[str]]:
        parts = [v.split("/", 1) for v in column.to_pylist()]
        return [p[0] for p in parts], [p[1] for p in parts]

    left, right, nodes = split(pairs["unique_id_l"]), split(pairs["unique_id_r"]), split(
        members["unique_id"])  # fmt: skip
    matched = pa.table({"left_source": left[0], "left_key": left[1],
                        "right_source": right[0], "right_key": right[1]})  # fmt: skip
    clustered = pa.table({"source": nodes[0], "source_key": nodes[1],
                          "cluster": members["cluster_id"].cast(pa.string())})  # fmt: skip
    return elapsed, {"matched_pairs": matched.num_rows}, matched, clustered
