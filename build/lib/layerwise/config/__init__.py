"""The run config: its sections, the schema that builds them, cross-field checks."""
