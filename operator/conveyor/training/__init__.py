"""The training code of TrainingPipelines, used by the `conveyor train` Job and the operator.

A library layer beside `conveyor.features`: no Kubernetes here. Import the modules themselves
(nothing heavy is imported with the package):

- estimators: the estimator allowlist, parameter and search-space validation;
- splits: training / holdout row selection and cross-validation splitters;
- search: hyper-parameter search (grid, random, successive halving, Bayesian);
- metrics: scores, the standard evaluation set and the dummy baseline.
"""

__all__: list[str] = []
