"""What a fit-and-explain job asks for, and every bound and allowed name it is checked against.

Each numeric bound and each list of names is declared here once: the HTTP parameter models
(api/endpoint_params.py), GET /models and the model builder (shared/ml/estimators.py) all read them from
here, so a request the API accepts is one the worker can build. The base-model allowlist lives in
shared/ml/registry.py and the explanation methods in shared/ml/explain/methods/, both also in the
ML core, above this module: shared/ml/validation.py checks a spec against all three. A JobSpec
travels from the API to the worker as versioned JSON (`to_json`/`from_json`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal, get_args

from shared.ml.errors import LimitExceeded, ParameterError

Task = Literal["classification", "regression"]
Family = Literal["ml", "gbdt"]
GbdtType = Literal["lightgbm", "xgboost", "catboost", "gradientboosting"]
PiMethod = Literal["splitconformal", "localconformal"]
Impute = Literal["none", "median", "most_frequent"]
BackgroundSource = Literal["sample", "upload"]

GBDT_MODEL_TYPES: tuple[str, ...] = get_args(GbdtType)
PI_METHODS: tuple[str, ...] = get_args(PiMethod)
IMPUTE_CHOICES: tuple[str, ...] = get_args(Impute)
#: Boosters that take missing feature values as they are (each tree learns where they go).
NATIVE_MISSING_MODEL_TYPES: tuple[str, ...] = ("lightgbm", "xgboost", "catboost")
NATIVE_MISSING_BASE_MODEL_PREFIX = "HistGradientBoosting"
DEFAULT_TARGET = "target"
RESERVED_COLUMN = "training_index"
MAX_COLUMN_NAME_CHARS = 1_000
#: Boosters whose exact SHAP interaction values we compute.
INTERACTION_MODEL_TYPES: tuple[str, ...] = ("xgboost", "gradientboosting")

SPEC_VERSION = 1


@dataclass(frozen=True)
class Bound:
    """An allowed numeric range, inclusive at each end unless said otherwise."""

    name: str
    low: float
    high: float
    low_inclusive: bool = True
    high_inclusive: bool = True
    applies_to: str = ""  # e.g. "for model_type catboost", when the bound is narrower for some models

    def allows(self, value: float) -> bool:
        above = value >= self.low if self.low_inclusive else value > self.low
        below = value <= self.high if self.high_inclusive else value < self.high
        return above and below

    def describe(self) -> str:
        low = f"at least {self.low:g}" if self.low_inclusive else f"greater than {self.low:g}"
        high = f"at most {self.high:g}" if self.high_inclusive else f"less than {self.high:g}"
        return f"{low} and {high}{' ' + self.applies_to if self.applies_to else ''}"

    def check(self, value: float) -> None:
        if not self.allows(value):
            raise ParameterError("bad_parameter", f"{self.name} must be {self.describe()}; got {value}.")

    def field_constraints(self) -> dict[str, float]:
        """The same bound as pydantic Field arguments (ge/gt, le/lt), for the HTTP models and OpenAPI."""
        return {
            "ge" if self.low_inclusive else "gt": self.low,
            "le" if self.high_inclusive else "lt": self.high,
        }


SEED = Bound("seed", 0, 2**31 - 1)
N_HIDDEN_FEATURES = Bound("n_hidden_features", 0, 1_000)
#: 1,000 trees at the deepest depth cost seconds on a 30-row file; 10,000 catboost trees cost 40 s there
#: and minutes on the seed data (and gradientboosting fits its trees one by one in Python).
N_ESTIMATORS = Bound("n_estimators", 1, 1_000)
LEARNING_RATE = Bound("learning_rate", 0, 1, low_inclusive=False)
MAX_DEPTH = Bound("max_depth", 1, 16)  # deeper trees are never what a user meant
#: CatBoost grows symmetric trees of 2^depth leaves whatever the data: at depth 16, 100 trees on iris
#: take 80 s, so 10,000 would outrun the worker's time limit; CatBoost itself recommends 4 to 10.
MAX_DEPTH_BY_MODEL_TYPE: dict[str, Bound] = {
    "catboost": Bound("max_depth", 1, 10, applies_to="for model_type catboost"),
}
LEVEL = Bound("level", 0, 100, low_inclusive=False, high_inclusive=False)
BOUNDS: tuple[Bound, ...] = (SEED, N_HIDDEN_FEATURES, N_ESTIMATORS, LEARNING_RATE, MAX_DEPTH, LEVEL)


@dataclass(frozen=True)
class ModelSpec:
    """Which model to fit. `family="ml"` uses base_model/n_hidden_features, "gbdt" the booster fields."""

    task: Task
    family: Family
    base_model: str | None = None
    n_hidden_features: int = 5
    model_type: GbdtType = "lightgbm"
    n_estimators: int = 100
    learning_rate: float = 0.1
    max_depth: int = 3
    seed: int = 123
    impute: Impute = "none"

    @property
    def handles_missing(self) -> bool:
        """Whether missing feature values may reach this model: imputed, or taken natively (the boosters,
        and scikit-learn's histogram boosting unless nnetsauce's hidden layer comes first)."""
        booster = self.family == "gbdt" and self.model_type in NATIVE_MISSING_MODEL_TYPES
        bare_histogram = (
            self.family == "ml"
            and self.n_hidden_features == 0
            and (self.base_model or "").startswith(NATIVE_MISSING_BASE_MODEL_PREFIX)
        )
        return booster or bare_histogram or self.impute != "none"


BACKGROUND_SAMPLE = "sample:"


@dataclass(frozen=True)
class BackgroundSpec:
    """Which rows SHAP's explainer takes as its background, when it takes any (path-dependent TreeSHAP
    takes none): a sample of at most `rows` training rows drawn with the job's seed (`rows` None: up to
    max_background_rows, the default), or an uploaded file of `rows` rows, `sha256` that of its bytes as
    sent."""

    source: BackgroundSource = "sample"
    rows: int | None = None
    sha256: str | None = None

    @property
    def asked(self) -> bool:
        """Whether the request chose the background (rather than leaving the default sample)."""
        return self != BackgroundSpec()

    @classmethod
    def parse(cls, text: str) -> BackgroundSpec:
        """`sample:N`, N a positive integer; ParameterError naming the parameter otherwise."""
        given = text.strip()
        count = given[len(BACKGROUND_SAMPLE) :] if given.startswith(BACKGROUND_SAMPLE) else ""
        if not (count.isascii() and count.isdigit()) or int(count) < 1:
            raise ParameterError(
                "bad_parameter",
                "background must be sample:N with N a positive whole number of rows (or send a "
                f"`background` file); got {text!r}.",
            )
        return cls("sample", int(count))

    def describe(self) -> str:
        """As the request gave it: `sample:N`, or the uploaded file."""
        if self.source == "upload":
            return f"an uploaded file of {self.rows} rows"
        return f"{BACKGROUND_SAMPLE}{self.rows}" if self.rows is not None else "the default sample"

    def check(self, limits: Limits) -> None:
        """LimitExceeded `too_many_background_rows` when it holds more rows than max_background_rows."""
        limit = limits.max_background_rows
        if self.rows is None or self.rows <= limit:
            return
        asked = (
            f"The background file has {self.rows} rows"
            if self.source == "upload"
            else f"background={BACKGROUND_SAMPLE}{self.rows} asks for {self.rows} rows"
        )
        raise LimitExceeded(
            "too_many_background_rows",
            f"{asked}, more than max_background_rows = {limit}: use at most {limit} rows, or raise the "
            "limit.",
            details={"parameter": "background", "limit": limit, "setting": "FITEXPLAIN_MAX_BACKGROUND_ROWS"},
        )

    def row_bound(self, limits: Limits) -> int:
        """At most how many background rows the explainer will take (for the cost estimate)."""
        return self.rows if self.rows is not None else limits.max_background_rows

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BackgroundSpec:
        _check_known_fields(cls, data)
        return cls(**data)


@dataclass(frozen=True)
class JobSpec:
    """A whole fit-and-explain request; `interpretability` names registered explanation methods."""

    model: ModelSpec
    predict_proba: bool = False
    return_pi: bool = False
    level: float = 95.0
    pi_method: PiMethod = "splitconformal"
    interpretability: tuple[str, ...] = ()
    shap_interactions: bool = False
    target: str = DEFAULT_TARGET
    id_column: str | None = None
    background: BackgroundSpec = BackgroundSpec()

    @property
    def task(self) -> Task:
        return self.model.task

    @property
    def seed(self) -> int:
        return self.model.seed

    def to_json(self) -> dict[str, Any]:
        """The versioned JSON form stored on the job row: {"version": 1, "model": {...}, ...}; the default
        background is left out (a spec without one reads as the default)."""
        body = asdict(self)
        body["interpretability"] = list(self.interpretability)
        if not self.background.asked:
            del body["background"]
        return {"version": SPEC_VERSION, **body}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobSpec:
        """The JobSpec that `to_json` wrote; refuses other versions and unknown fields."""
        body = dict(data)
        version = body.pop("version", None)
        if version != SPEC_VERSION:
            raise ValueError(
                f"job spec version {version!r} is not supported (this code reads {SPEC_VERSION})"
            )
        model = body.pop("model")
        _check_known_fields(ModelSpec, model)
        _check_known_fields(cls, body)
        body["interpretability"] = tuple(body.get("interpretability", ()))
        body["background"] = BackgroundSpec.from_json(body.get("background") or {})
        return cls(model=ModelSpec(**model), **body)


def check_interactions(interpretability: tuple[str, ...], model: ModelSpec) -> None:
    """SHAP interaction values need SHAP asked for, on a booster whose interactions we compute."""
    if "shap" not in interpretability:
        raise ParameterError(
            "bad_parameter", "shap_interactions=true needs interpretability=shap (or permutation,shap)"
        )
    if model.family != "gbdt" or model.model_type not in INTERACTION_MODEL_TYPES:
        raise ParameterError(
            "interactions_unsupported",
            f"shap_interactions is available for model_type {' or '.join(INTERACTION_MODEL_TYPES)} "
            f"(the /gbdt endpoints), not {model.model_type if model.family == 'gbdt' else model.base_model}",
        )


def check_columns(target: str, id_column: str | None) -> None:
    """The column names a request gives roles: each a header name, `training_index` neither, and the
    id column not the target."""
    for name, value in (("target", target), ("id_column", id_column)):
        if value is None:
            continue
        if not value.strip() or len(value) > MAX_COLUMN_NAME_CHARS or value != value.strip():
            raise ParameterError(
                "bad_parameter",
                f"{name} must be a column name of the upload (1 to {MAX_COLUMN_NAME_CHARS} characters, "
                f"no surrounding spaces); got {value!r}.",
            )
        if value == RESERVED_COLUMN:
            raise ParameterError(
                "bad_parameter", f"{name} cannot be '{RESERVED_COLUMN}': that column says which rows train."
            )
    if id_column is not None and id_column == target:
        raise ParameterError("bad_parameter", f"id_column and target are both {target!r}: name two columns.")


def check_choice(name: str, value: object, allowed: tuple[object, ...]) -> None:
    if value not in allowed:
        raise ParameterError(
            "bad_parameter", f"{name} {value!r} is not allowed; use one of {', '.join(map(str, allowed))}."
        )


def _check_known_fields(cls: type, data: dict[str, Any]) -> None:
    unknown = set(data) - {f.name for f in fields(cls)}
    if unknown:
        raise ValueError(f"job spec: unknown {cls.__name__} fields {sorted(unknown)}")


@dataclass(frozen=True)
class Limits:
    """Bounds that keep a worker alive; the service fills them from its settings."""

    max_rows: int = 10_000_000
    max_columns: int = 1_000
    max_cell_chars: int = 1_000
    max_classes: int = 100
    max_explain_rows: int = 100_000
    max_predict_explain_rows: int = 1_000_000
    predict_batch_rows: int = 100_000  # scored together: 100,000 rows x 50 features is 40 MB a copy
    max_background_rows: int = 500
    max_shap_floats: int = 200_000_000
    max_categories: int = 50
    max_decompressed_bytes: int = 2_000_000_000
    max_decompression_ratio: float = 100.0
    max_line_bytes: int = 4_194_304
    worker_max_memory_mb: int = 4_000
