"""A kept model as an ONNX graph, for onnxruntime and every other ONNX runtime.

The converters are each library's own or the ONNX project's: skl2onnx for scikit-learn estimators,
onnxmltools for xgboost and LightGBM, CatBoost's `save_model(format="onnx")`. The graph takes one input,
`X`: the model-space matrix (features in training order, as the card lists them), and gives `label` (the
class code into the card's classes) and `probabilities` for a classifier, `variable` (or `predictions` for
CatBoost) for a regressor. Precision: scikit-learn estimators that compute in double (linear models and
the like) are converted in double; tree ensembles in float32, which is how scikit-learn's trees compare
their thresholds anyway and the only precision the xgboost, LightGBM and CatBoost converters offer. A
float32 input can land on the other side of a split threshold than the float64 one did: rare rows differ.

Refused (409) with the reason: nnetsauce's models (no converter has their hidden layer and clustering),
categorical features (the converters take numbers only: our one-hot and native category splits are not
converted), and any estimator the converter does not know. The `onnx` extra must be installed.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shared.ml.categories import CatBoostCategories, OneHotModel, library_of
from shared.ml.model.export import Exported, FormatNotApplicable
from shared.ml.model.export.requirements import missing_extra

if TYPE_CHECKING:
    from shared.ml.model.kept import KeptModel

FORMAT = "onnx"
EXTRA = "onnx"
MEDIA_TYPE = "application/octet-stream"
TARGET_OPSET = 17
#: The highest opset onnxmltools converts xgboost and LightGBM models to.
ONNXMLTOOLS_OPSET = 15
#: The ai.onnx.ml opset: 3 is the first whose tree ensembles compute in double.
ML_OPSET = 3
INPUT_NAME = "X"


def refusal(kept: KeptModel) -> str | None:
    """Why this model cannot be converted (None: it can), without converting it."""
    lacking = missing_extra(EXTRA, ("onnx", "skl2onnx", "onnxmltools"))
    if lacking is not None:
        return lacking
    model = kept.model
    if isinstance(model, OneHotModel | CatBoostCategories) or kept.categories:
        return (
            "the model has categorical features, which the ONNX converters do not take here "
            "(download it as native, skops or bundle)"
        )
    library = library_of(model)
    if library == "nnetsauce":
        return (
            f"no ONNX converter handles nnetsauce's {type(model).__name__} (its clustering and hidden "
            "layer); download it as skops, mlflow or bundle"
        )
    if library not in ("xgboost", "lightgbm", "catboost", "sklearn"):
        return f"no ONNX converter for {type(model).__name__}"
    return None


def export(kept: KeptModel) -> Exported:
    """The ONNX file of the kept model (FormatNotApplicable when the converter refuses it)."""
    graph = _convert(kept.model, len(kept.features))
    graph.doc_string = (
        f"fitexplain {kept.spec.task} model; input {INPUT_NAME}: rows × the card's features, in order"
    )
    _set_metadata(graph, {"feature_names": json.dumps(kept.feature_names)})
    if kept.class_labels is not None:
        _set_metadata(graph, {"class_labels": json.dumps(kept.class_labels)})
    return Exported(graph.SerializeToString(), "model.onnx", MEDIA_TYPE)


def _set_metadata(graph: Any, values: dict[str, str]) -> None:
    for key, value in values.items():
        entry = graph.metadata_props.add()
        entry.key, entry.value = key, value


def _convert(model: Any, n_features: int) -> Any:
    library = library_of(model)
    try:
        if library == "catboost":
            return _catboost(model)
        if library in ("xgboost", "lightgbm"):
            return _onnxmltools(model, n_features, library)
        return _sklearn(model, n_features)
    except Exception as err:  # a converter's refusal: its message says what it does not support
        raise FormatNotApplicable(FORMAT, f"the converter refused {type(model).__name__}: {err}") from err


def _catboost(model: Any) -> Any:
    import onnx

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.onnx"
        model.save_model(str(path), format="onnx")
        graph = onnx.load_model(str(path))
    _rename_input(graph, INPUT_NAME)
    return graph


def _rename_input(graph: Any, name: str) -> None:
    """One input name for every graph (CatBoost names its input `features`)."""
    old = graph.graph.input[0].name
    graph.graph.input[0].name = name
    for node in graph.graph.node:
        for position, used in enumerate(node.input):
            if used == old:
                node.input[position] = name


def _onnxmltools(model: Any, n_features: int, library: str) -> Any:
    import onnxmltools
    from onnxmltools.convert.common.data_types import FloatTensorType

    inputs = [(INPUT_NAME, FloatTensorType([None, n_features]))]
    if library == "xgboost":
        return onnxmltools.convert_xgboost(model, initial_types=inputs, target_opset=ONNXMLTOOLS_OPSET)
    return onnxmltools.convert_lightgbm(
        model, initial_types=inputs, target_opset=ONNXMLTOOLS_OPSET, zipmap=False
    )


def _sklearn(model: Any, n_features: int) -> Any:
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType

    options = {"zipmap": False} if hasattr(model, "predict_proba") else None
    opset = {"": TARGET_OPSET, "ai.onnx.ml": ML_OPSET}
    # scikit-learn's trees cast their input to float32 before comparing it with their (float32)
    # thresholds: a float32 graph reproduces that; anything else computes in double.
    tensor = FloatTensorType if _has_trees(model) else DoubleTensorType
    return to_onnx(
        model, initial_types=[(INPUT_NAME, tensor([None, n_features]))], options=options, target_opset=opset
    )


def _has_trees(model: Any) -> bool:
    module = type(model).__module__
    return module.startswith(("sklearn.ensemble", "sklearn.tree"))
