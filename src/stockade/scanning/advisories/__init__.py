"""Advisory data: the normalized record, importers (OSV, Debian tracker, Alpine secdb) and store."""
