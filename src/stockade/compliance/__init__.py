"""compliance pillar."""
