"""Framework mapping files (YAML)."""
