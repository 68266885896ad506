"""Data layer: on-disk formats, records, context assembly, frame features, tokenisation and collation."""
