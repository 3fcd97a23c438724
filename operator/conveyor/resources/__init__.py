"""Pure builders: spec and observed state in, desired objects and status out. No I/O here."""
