"""`conveyor train`: feature snapshot → fitted pipeline, search, evaluation, gates, artifact.

Modules: `settings` (arguments and environment), `validate` (the spec, before any data),
`data` (a snapshot into numpy), `program` (the phases), `outputs` (evaluation, gates, the run's
files), `layout` (the run's keys), `cli` (arguments, the JSON result). The package import stays
light; scikit-learn and the data libraries load when a run starts.
"""

from .cli import add_commands, main

__all__ = ["add_commands", "main"]
