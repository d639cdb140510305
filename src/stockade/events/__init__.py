"""The event platform between the pillars and the controller: ingestion of agents' batches,
response rules, notifications. Pillars never import it; the CLI and the controller wire it.
Imports only model, config, k8s, store and identity."""
