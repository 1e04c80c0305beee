"""Entity resolution for the unified customer profile (Dagster-free; Spark DataFrames in/out).

    records ─▶ candidate_pairs (blocking) ─▶ score_pairs ─▶ best_pairs ─▶ cluster
            ─▶ merge_profiles (survivorship) + link_table + pair_table + candidates (review)

Rules, sources and survivorship live in match_rules.yaml (load_config). docs/unify.md explains
the design, the seed-data figures and the benchmark.
"""

from customer360.unify.cluster import cluster, union_find
from customer360.unify.config import (
    Comparison,
    CsvSourceMapping,
    MatchRule,
    SourceConfig,
    Survivorship,
    SurvivorshipGroup,
    UnifyConfig,
    config_path,
    load_config,
    parse_config,
    unify_config,
)
from customer360.unify.ids import (
    carry_forward_ids,
    id_redirects,
    unified_id,
    uuid5_column,
)
from customer360.unify.keys import match_keys, normalize_email, normalize_name, normalize_phone
from customer360.unify.match import best_pairs, candidate_pairs, oversized_blocks, score_pairs
from customer360.unify.merge import link_table, merge_profiles
from customer360.unify.pipeline import UnifyResult, unify
from customer360.unify.quality import (
    cluster_pairs,
    evaluate,
    quality_figures,
    truth_pairs_from_entities,
)
from customer360.unify.review import candidates, pair_table
from customer360.unify.schema import RECORD_ATTRIBUTES, RECORD_COLUMNS, RECORD_DDL
from customer360.unify.sources import (
    RejectedCsvRow,
    csv_output_schema,
    read_crm_csv,
    to_records,
    validate_records,
)

__all__ = [
    "RECORD_ATTRIBUTES",
    "RECORD_COLUMNS",
    "RECORD_DDL",
    "Comparison",
    "CsvSourceMapping",
    "MatchRule",
    "RejectedCsvRow",
    "SourceConfig",
    "Survivorship",
    "SurvivorshipGroup",
    "UnifyConfig",
    "UnifyResult",
    "best_pairs",
    "candidate_pairs",
    "candidates",
    "carry_forward_ids",
    "cluster",
    "cluster_pairs",
    "config_path",
    "csv_output_schema",
    "evaluate",
    "id_redirects",
    "link_table",
    "load_config",
    "match_keys",
    "merge_profiles",
    "normalize_email",
    "normalize_name",
    "normalize_phone",
    "oversized_blocks",
    "pair_table",
    "parse_config",
    "quality_figures",
    "read_crm_csv",
    "score_pairs",
    "to_records",
    "truth_pairs_from_entities",
    "unified_id",
    "unify",
    "unify_config",
    "union_find",
    "uuid5_column",
    "validate_records",
]
