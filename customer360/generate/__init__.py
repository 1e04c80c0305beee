"""Sample-data generators for landing (Dagster-free)."""

from customer360.generate.customers import (
    TRUTH_PAIRS_CSV,
    GeneratedLanding,
    generate_customer_landing,
    write_second_source,
)

__all__ = [
    "TRUTH_PAIRS_CSV",
    "GeneratedLanding",
    "generate_customer_landing",
    "write_second_source",
]
