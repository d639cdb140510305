"""events pillar."""
