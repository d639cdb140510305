"""Image and filesystem scanning: sources, layers, catalogers, advisories, matching, reports."""
