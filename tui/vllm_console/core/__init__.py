"""Everything that is not UI. No module in this package imports textual or rich."""
