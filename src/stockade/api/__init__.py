"""The controller (``stockade controller``): the HTTP API over the store that agents report to
and people and tools read from. See docs/controller.md."""
