"""Read-only views of the registry: `conveyor compare` and the web page of `conveyor ui`.

Nothing here writes to the cluster or the store: it lists and reads through clients/, and
renders text or HTML.
"""
