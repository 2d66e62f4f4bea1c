"""Data at rest: the SQLite run store, the data home, export/import, and comparisons across stored runs."""
