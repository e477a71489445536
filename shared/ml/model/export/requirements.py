"""The pip requirements a downloaded model loads with: the versions of the libraries that fitted it."""

from __future__ import annotations

from importlib import metadata, util
from typing import TYPE_CHECKING

from shared.ml.categories import library_of

if TYPE_CHECKING:
    from shared.ml.model.kept import KeptModel

#: The PyPI package of each model library (the service runs the CPU-only build of xgboost, the same
#: library under another name: a user installs the usual one).
PACKAGES = {
    "sklearn": "scikit-learn",
    "xgboost": "xgboost",
    "lightgbm": "lightgbm",
    "catboost": "catboost",
    "nnetsauce": "nnetsauce",
}


#: Packages installed under another name here: xgboost-cpu is xgboost without its GPU libraries.
ALIASES = {"xgboost": ("xgboost", "xgboost-cpu")}


def model_library(kept: KeptModel) -> str:
    """The library of the kept estimator, under its wrappers (`OneHotModel`, `CatBoostCategories`)."""
    model = kept.model
    inner = getattr(model, "model", None)
    if type(model).__module__.startswith("shared.") and inner is not None:
        model = inner
    return library_of(model)


def pinned(kept: KeptModel, *names: str) -> list[str]:
    """`name==version` for each PyPI package name, at the version that fitted the model (the kept
    model's record, else this environment's, which is the one that fitted it), unpinned when neither
    knows it."""
    found = []
    for name in dict.fromkeys(names):
        version = kept.libraries.get(name) or next(
            filter(None, map(_installed, ALIASES.get(name, (name,)))), None
        )
        found.append(f"{name}=={version}" if version else name)
    return found


def _installed(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def model_requirements(kept: KeptModel) -> list[str]:
    """The model's own library (scikit-learn too under nnetsauce and for LightGBM's scikit-learn API),
    and numpy, pinned."""
    library = PACKAGES.get(model_library(kept), "scikit-learn")
    names = [library, "numpy"]
    if library in ("nnetsauce", "lightgbm", "xgboost", "catboost"):
        names.insert(1, "scikit-learn")
    return pinned(kept, *names)


def missing_extra(extra: str, modules: tuple[str, ...]) -> str | None:
    """Why a format needs an optional extra that is not installed here (None: it is)."""
    absent = [name for name in modules if util.find_spec(name) is None]
    if not absent:
        return None
    return (
        f"the workers lack the optional extra fitexplain[{extra}] ({', '.join(absent)} not installed): "
        f"install it with pip install 'fitexplain[{extra}]'"
    )
