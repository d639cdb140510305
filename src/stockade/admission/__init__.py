"""admission pillar."""
