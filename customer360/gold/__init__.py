"""Gold work behind the assets (Dagster-free): identity resolution over the lake's silver tables
(identity.py), the unified profile and its segments (profile.py), the enrichments the profile
takes when they exist (enrichment.py) and the profile's whole-table check figures (checks.py)."""
