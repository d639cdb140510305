"""api pillar."""
