"""`conveyor materialize`: raw data → validated, transformed, profiled feature snapshot.

Modules: `sources` (list and stream S3 objects), `spill` (local typed rows, de-duplication),
`snapshot` (ids, layout, manifest), `program` (the phases), `cli` (arguments, the JSON result).
The package import stays light; the data libraries load when a run starts.
"""

from .cli import add_commands, main

__all__ = ["add_commands", "main"]
