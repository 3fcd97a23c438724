"""Keys of one training run in the Conveyor bucket; a run's path is written once, never again.

s3://<bucket>/models/<namespace>/<model>/runs/<run>/
    trials/part-<i:05d>.json   the SearchResult of pod i of an Indexed Job (--phase trials)
    model.skops                the fitted pipeline (skops, no pickle)
    card.json                  the model card
    report.html                the training report
    result.json                written LAST: a run with one is complete and is not redone
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RunLayout"]


@dataclass(frozen=True)
class RunLayout:
    bucket: str
    namespace: str
    model: str
    run: str

    @property
    def prefix(self) -> str:
        return f"models/{self.namespace}/{self.model}/runs/{self.run}/"

    @property
    def trials(self) -> str:
        return self.prefix + "trials/"

    def trial_part(self, index: int) -> str:
        return f"{self.trials}part-{index:05d}.json"

    @property
    def model_file(self) -> str:
        return self.prefix + "model.skops"

    @property
    def card(self) -> str:
        return self.prefix + "card.json"

    @property
    def report(self) -> str:
        return self.prefix + "report.html"

    @property
    def result(self) -> str:
        return self.prefix + "result.json"

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"
