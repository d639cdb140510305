"""The event platform: what happens to an Event after a pillar emits it (ingestion, response rules,
notifications). Pillars never import this package; the CLI, the API and the controller wire it."""
