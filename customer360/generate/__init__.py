"""Sample-data generators for landing (Dagster-free)."""

from customer360.generate.customers import GeneratedLanding, generate_customer_landing

__all__ = ["GeneratedLanding", "generate_customer_landing"]
