"""The event platform: below the API and the controller, above the model and the store.

Pillars never import this package; the CLI, the API and the controller wire it to them.
"""
