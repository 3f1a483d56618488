"""Results store: run directories, the journal, Parquet tables, catalog and export."""
