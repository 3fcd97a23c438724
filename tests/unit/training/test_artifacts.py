"""Model files: the served pipeline round-trips through skops, and nothing unverified is loaded."""

from __future__ import annotations

import ast
import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import skops.io
from sklearn.base import clone
from sklearn.datasets import load_iris
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import (
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from conveyor.api.v1alpha1.featureset import FeatureSetSpec
from conveyor.features.conform import conform
from conveyor.features.transforms import fit_transforms
from conveyor.training import artifacts
from conveyor.training.artifacts import (
    ArtifactError,
    FeatureError,
    FeatureStep,
    build_pipeline,
    digest,
    dump_model,
    is_trusted_type,
    load_model,
    model_size,
)

TRAINING_PACKAGE = Path(__file__).resolve().parents[3] / "operator" / "conveyor" / "training"
MEASURES = ["sepal_length_cm", "sepal_width_cm", "petal_length_cm", "petal_width_cm"]
FEATURESET = {
    "sources": [{"name": "flowers", "uri": "s3://conveyor-raw/iris/*.csv"}],
    "schema": {
        "entityKey": "flower_id",
        "eventTime": "observed_at",
        "target": "species",
        "columns": [
            {"name": "flower_id", "type": "int", "nullable": False},
            {"name": "observed_at", "type": "timestamp", "nullable": False},
            *({"name": name, "type": "float", "min": 0, "max": 20} for name in MEASURES),
            {"name": "species", "type": "category", "nullable": False},
        ],
    },
    "transforms": [
        {"op": "impute", "columns": MEASURES, "strategy": "median"},
        {
            "op": "derive",
            "output": "petal_area_cm2",
            "expression": "petal_length_cm * petal_width_cm",
        },
        {"op": "standardScale", "columns": [*MEASURES, "petal_area_cm2"]},
    ],
}


class Iris:
    """The iris FeatureSet materialized as the materialize Job does it, plus its raw rows."""

    def __init__(self) -> None:
        data = load_iris()
        start = datetime(2026, 1, 1, tzinfo=UTC)
        self.rows: list[dict[str, Any]] = [
            {
                "flower_id": index,
                "observed_at": (start + timedelta(hours=index)).isoformat(),
                **dict(zip(MEASURES, map(float, measures), strict=True)),
                "species": str(data.target_names[label]),
            }
            for index, (measures, label) in enumerate(zip(data.data, data.target, strict=True))
        ]
        self.rows[3]["petal_width_cm"] = None  # imputed, at materialization and at serving
        spec = FeatureSetSpec.model_validate(FEATURESET)
        self.schema = spec.schema_.to_wire()
        batch = conform(pa.Table.from_pylist(self.rows), spec.schema_).batch
        fitted = fit_transforms(spec, lambda: [batch])
        self.transforms = fitted.to_json()
        snapshot = fitted.apply(batch)  # what the snapshot's parquet files hold
        self.feature_columns = fitted.feature_columns
        self.X = np.column_stack([snapshot.column(c).to_numpy() for c in fitted.feature_columns])
        self.y = np.asarray(snapshot.column("species").to_pylist())

    def pipeline(self, estimator: Any) -> Pipeline:
        model = build_pipeline(estimator, schema=self.schema, transforms=self.transforms)
        return model.fit(self.X, self.y)


@pytest.fixture(scope="module")
def iris() -> Iris:
    return Iris()


@pytest.fixture(scope="module")
def forest(iris: Iris) -> Pipeline:
    return iris.pipeline(RandomForestClassifier(n_estimators=15, random_state=0))


class SneakyClassifier(DummyClassifier):
    """A type no allowlist names: a model file holding it must not load."""


def test_a_saved_model_loads_verified_and_predicts_the_same_from_raw_rows(
    iris: Iris, forest: Pipeline
) -> None:
    data = dump_model(forest)
    loaded = load_model(data, expected_digest=digest(data))

    request = [{k: v for k, v in row.items() if k != "species"} for row in iris.rows]
    assert list(loaded.predict(request)) == list(forest.predict(request))
    assert np.array_equal(loaded.predict_proba(request), forest.predict_proba(iris.X))
    assert (loaded.predict(request) == iris.y).mean() > 0.95
    # The serving path reproduces the materialized features exactly.
    assert np.allclose(loaded.named_steps["features"].transform(request), iris.X)
    assert loaded.named_steps["features"].feature_names_out == iris.feature_columns


def test_the_feature_step_takes_rows_tables_and_the_feature_matrix(
    iris: Iris, forest: Pipeline
) -> None:
    step: FeatureStep = forest.named_steps["features"]
    table = pa.Table.from_pylist(iris.rows[:10])
    assert np.allclose(step.transform(table), iris.X[:10])
    assert step.transform(iris.X) is iris.X  # the training fast path: no copy
    only_keys = [
        {
            "petal_length_cm": 1.4,
            "petal_width_cm": 0.2,
            "sepal_length_cm": 5.0,
            "sepal_width_cm": 3.4,
        }
    ]
    assert forest.predict(only_keys)[0] == "setosa"  # entity key, time and target may be absent
    assert list(step.get_feature_names_out()) == iris.feature_columns


def test_rows_that_break_the_schema_or_wrong_arrays_are_refused_with_the_reason(
    forest: Pipeline,
) -> None:
    with pytest.raises(FeatureError, match=r"sepal_length_cm: -3.0 is below min 0"):
        forest.predict(
            [
                {
                    "sepal_length_cm": -3.0,
                    "sepal_width_cm": 3.0,
                    "petal_length_cm": 1.0,
                    "petal_width_cm": 0.2,
                }
            ]
        )
    with pytest.raises(FeatureError, match=r"5 numeric columns .*got shape \(2, 3\)"):
        forest.predict(np.zeros((2, 3)))
    with pytest.raises(FeatureError, match="list of rows"):
        forest.predict("sepal_length_cm=5")


def test_the_pipeline_clones_for_search_and_its_digest_is_the_registry_form(
    iris: Iris, forest: Pipeline
) -> None:
    copy = clone(forest).fit(iris.X, iris.y)
    assert copy.get_params()["features__transforms"] == iris.transforms
    assert list(copy.predict(iris.rows)) == list(forest.predict(iris.rows))
    data = dump_model(forest)
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest(data))
    assert digest(data) == digest(bytes(data))
    assert model_size(data) == len(data)
    with pytest.raises(ValueError, match="build_pipeline"):
        FeatureStep().fit(iris.X)


def test_a_flipped_byte_is_refused_before_anything_is_read(
    forest: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = dump_model(forest)
    expected = digest(data)
    tampered = bytearray(data)
    tampered[len(tampered) // 2] ^= 0x01

    def never(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("skops read a file whose digest does not match")

    monkeypatch.setattr(skops.io, "get_untrusted_types", never)
    monkeypatch.setattr(skops.io, "loads", never)
    with pytest.raises(ArtifactError) as error:
        load_model(bytes(tampered), expected_digest=expected)
    assert str(error.value) == (
        f"model.skops digest {digest(bytes(tampered))} does not match the registry's "
        f"{expected}; refusing to load"
    )


def test_a_type_outside_the_allowlist_is_refused_by_name(iris: Iris) -> None:
    model = iris.pipeline(SneakyClassifier())
    data = dump_model(model)
    name = f"{SneakyClassifier.__module__}.SneakyClassifier"
    with pytest.raises(ArtifactError, match=re.escape(name)) as error:
        load_model(data, expected_digest=digest(data))
    assert "outside the allowlist" in str(error.value)
    # What an estimator plugin declares is trusted.
    loaded = load_model(data, expected_digest=digest(data), extra_trusted=[name])
    assert isinstance(loaded.named_steps["model"], SneakyClassifier)


def test_a_model_that_would_run_a_shell_command_is_refused(iris: Iris) -> None:
    model = Pipeline(
        [
            ("features", FeatureStep(iris.schema, iris.transforms)),
            ("shell", FunctionTransformer(func=os.system)),
            ("model", DummyClassifier()),
        ]
    )
    data = skops.io.dumps(model)
    with pytest.raises(ArtifactError, match=r"posix\.system|nt\.system"):
        load_model(data, expected_digest=digest(data))


def test_unreadable_files_and_other_objects_are_refused() -> None:
    garbage = b"not a skops file"
    with pytest.raises(ArtifactError, match="not a readable skops file"):
        load_model(garbage, expected_digest=digest(garbage))
    plain = skops.io.dumps({"model": [1, 2, 3]})
    with pytest.raises(ArtifactError, match="holds a dict, not a scikit-learn Pipeline"):
        load_model(plain, expected_digest=digest(plain))


@pytest.mark.parametrize(
    "estimator",
    [
        GradientBoostingClassifier(n_estimators=5, random_state=0),
        HistGradientBoostingClassifier(max_iter=5, random_state=0),
        LogisticRegression(max_iter=500),
        KNeighborsClassifier(n_neighbors=3),
    ],
    ids=lambda estimator: type(estimator).__name__,
)
def test_swapping_the_estimator_still_gives_a_loadable_model(iris: Iris, estimator: Any) -> None:
    model = iris.pipeline(estimator)
    data = dump_model(model)
    loaded = load_model(data, expected_digest=digest(data))
    assert list(loaded.predict(iris.rows[:20])) == list(model.predict(iris.X[:20]))


def test_the_allowlist_keeps_code_runners_out() -> None:
    assert is_trusted_type("sklearn.tree._tree.Tree")
    assert is_trusted_type("conveyor.training.artifacts.FeatureStep")
    assert is_trusted_type("numpy.float64")
    for dangerous in (
        "builtins.eval",
        "posix.system",
        "numpy.load",
        "numpy.lib.npyio.load",
        "sklearn.datasets.fetch_openml",
        "pickle.loads",
        "conveyor.cli.main",
        "numpy.save",
        "numpy.fromfile",
        "numpy.lib.format.read_array",
        "scipy.io.matlab._mio.loadmat",
    ):
        assert not is_trusted_type(dangerous), dangerous
    assert is_trusted_type("mypackage.Forest", extra=["mypackage.Forest"])


def test_plugins_are_read_from_the_estimators_entry_point_group() -> None:
    from conveyor.training.estimators import ENTRY_POINT_GROUP

    assert artifacts.ENTRY_POINT_GROUP == ENTRY_POINT_GROUP
    assert isinstance(artifacts.plugin_trusted_types(), tuple)


def test_the_training_package_never_imports_pickle() -> None:
    forbidden = {
        "pickle",
        "cPickle",
        "_pickle",
        "joblib",
        "cloudpickle",
        "dill",
        "shelve",
        "marshal",
    }
    for path in sorted(TRAINING_PACKAGE.glob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            else:
                continue
            for module in modules:
                assert module.split(".")[0] not in forbidden, f"{path.name} imports {module}"


def test_a_request_row_a_transform_makes_infinite_is_refused_as_materialization_rejects_it() -> (
    None
):
    spec = FeatureSetSpec.model_validate(
        {
            **FEATURESET,
            "transforms": [
                *FEATURESET["transforms"],
                {"op": "derive", "output": "bloom", "expression": "sepal_length_cm ** 300"},
            ],
        }
    )
    iris = Iris()
    rows = conform(pa.Table.from_pylist(iris.rows), spec.schema_).batch
    fitted = fit_transforms(spec, lambda: [rows])
    big = {**iris.rows[0], "sepal_length_cm": 19.0}  # in range, but 19 ** 300 is inf
    _, _, rejected = fitted.apply_with_rows(
        conform(pa.Table.from_pylist([big]), spec.schema_).batch
    )
    model = build_pipeline(
        DummyClassifier(), schema=spec.schema_.to_wire(), transforms=fitted.to_json()
    )
    model.fit(np.zeros((3, len(fitted.feature_columns))), ["setosa", "versicolor", "virginica"])

    [reason] = rejected.reasons
    assert reason == (
        "spec.transforms[3] (derive 'bloom' = sepal_length_cm ** 300): inf is not a finite number"
    )
    with pytest.raises(FeatureError) as refused:
        model.predict([{k: v for k, v in big.items() if k != "species"}])
    assert reason in str(refused.value)
    assert model.predict([{k: v for k, v in iris.rows[0].items() if k != "species"}]).size == 1
