"""The data code of FeatureSets, shared by the materialize Job and the model server.

Import the modules themselves (nothing heavy is imported with the package):

- expressions: the safe expression language of derive and filter steps;
- conform: raw rows (files or request rows) to the typed schema, with rejects;
- transforms: fitted at materialization, applied identically at serving;
- predictionlog: the prediction and feedback log format (serving writes, materialization reads).
"""

__all__: list[str] = []
