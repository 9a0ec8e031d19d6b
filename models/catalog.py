"""The model catalog: named, versioned River pipelines and the honest baselines they must beat.

Every entry builds a fresh, untrained River classifier of a binary target (``True`` = "up") that
reads the dict of :func:`models.inputs.model_inputs`. A model's identity is ``name:vN``; the
version is bumped whenever the pipeline, its hyper-parameters or :data:`models.inputs.INPUTS_VERSION`
change, so a score or a signal always names exactly what produced it. Seeds are fixed: two builds
of an entry learn identically, which the snapshot and no-look-ahead tests rely on.

Baselines are River classifiers too (same verbs, same scoring). Each learns P(up | state) from the
same delayed labels as the models, with Laplace smoothing, for a state given by a fixed rule:

- ``majority``: one state, so the prediction is the running share of "up" labels (the
  majority-class baseline with a calibrated probability; its ROC AUC is 0.5 by construction);
- ``persistence``: the sign of the last bar's return ("no change" in direction);
- ``ta_rule``: a pure technical-analysis state: MACD line above/below 0 (EMA12 vs EMA26) crossed
  with RSI(14) zone (< 30, 30-70, > 70).

>>> sorted(CATALOG)
['arf', 'hat', 'logreg', 'majority', 'persistence', 'ta_rule']
>>> CATALOG["logreg"].model_version
'logreg:v1'
>>> m = CATALOG["majority"].build()
>>> for y in (True, True, False):
...     m.learn_one({}, y)
>>> m.predict_proba_one({})[True]
0.6
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from river import base

from models.inputs import INPUTS_VERSION

# The pipelines' River modules are imported by their builders: ``forest`` and ``tree`` pull in
# scipy, pandas and SQLAlchemy (seconds of start-up), and settings import this catalog in every
# process, most of which never build a model.


def _state_all(x: dict[str, float]) -> str:
    return "all"


def _state_persistence(x: dict[str, float]) -> str:
    r = x.get("return_1")
    if r is None:
        return "unknown"
    return "up" if r > 0 else "down" if r < 0 else "flat"


def _state_ta(x: dict[str, float]) -> str:
    macd, rsi = x.get("macd_rel"), x.get("rsi_14")  # rsi input is (RSI - 50) / 100
    if macd is None or rsi is None:
        return "unknown"
    zone = "oversold" if rsi < -0.2 else "overbought" if rsi > 0.2 else "neutral"
    return f"{'bull' if macd > 0 else 'bear'}:{zone}"


#: A River classifier. River annotates inputs as ``dict[Hashable, Any]`` (invariant), which our
#: ``dict[str, float]`` inputs cannot match, so the type is left open here.
RiverClassifier = Any

_RULES: dict[str, Callable[[dict[str, float]], str]] = {
    "all": _state_all,
    "persistence": _state_persistence,
    "ta": _state_ta,
}


class FrequencyBaseline(base.Classifier):
    """P(up | rule state) from counts of the labels learned so far, Laplace-smoothed ((up + 1) / (n + 2)).

    ``rule`` names the state function (``all``, ``persistence`` or ``ta``); the rule is looked up
    by name so the instance pickles as plain data.

    >>> b = FrequencyBaseline("persistence")
    >>> b.learn_one({"return_1": 0.01}, True)
    >>> b.predict_proba_one({"return_1": 0.02})[True], b.predict_proba_one({"return_1": -0.01})[True]
    (0.6666666666666666, 0.5)
    """

    def __init__(self, rule: str = "all") -> None:
        if rule not in _RULES:
            raise ValueError(f"unknown baseline rule {rule!r}; expected one of {sorted(_RULES)}")
        self.rule = rule
        self.counts: dict[str, list[int]] = {}

    def learn_one(self, x: dict[str, float], y: base.typing.ClfTarget) -> None:  # type: ignore[override]
        """Count label ``y`` in the state of ``x``."""
        cell = self.counts.setdefault(_RULES[self.rule](x), [0, 0])
        cell[0] += 1 if y is True else 0
        cell[1] += 1

    def predict_proba_one(self, x: dict[str, float]) -> dict[base.typing.ClfTarget, float]:  # type: ignore[override]
        """``{True: p, False: 1 - p}`` with p the smoothed share of "up" in the state of ``x``."""
        up, n = self.counts.get(_RULES[self.rule](x), (0, 0))
        p = (up + 1) / (n + 2)
        return {True: p, False: 1.0 - p}

    def predict_one(self, x: dict[str, float]) -> bool:  # type: ignore[override]
        """``True`` when "up" is more likely than not in the state of ``x``."""
        return self.predict_proba_one(x)[True] > 0.5

    @property
    def _multiclass(self) -> bool:
        return False


def _logreg() -> RiverClassifier:
    from river import linear_model, optim, preprocessing

    return preprocessing.StandardScaler() | linear_model.LogisticRegression(optimizer=optim.SGD(0.01), l2=1e-4)


def _hat() -> RiverClassifier:
    from river import tree

    return tree.HoeffdingAdaptiveTreeClassifier(grace_period=200, delta=1e-5, leaf_prediction="nba", seed=42)


def _arf() -> RiverClassifier:
    from river import forest

    return forest.ARFClassifier(n_models=10, seed=42, leaf_prediction="nba")


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    """One catalog model: its name, version, kind and how to build a fresh untrained instance."""

    name: str
    version: int
    kind: Literal["model", "baseline"]
    description: str
    build: Callable[[], RiverClassifier]

    @property
    def model_version(self) -> str:
        """``name:vN``, the identity carried by predictions, scores and signals.

        >>> CATALOG["hat"].model_version
        'hat:v1'
        """
        return f"{self.name}:v{self.version}"


def _baseline(rule: str) -> Callable[[], RiverClassifier]:
    # A named module-level builder per rule keeps entries picklable and their reprs readable.
    return {"all": _majority, "persistence": _persistence, "ta": _ta_rule}[rule]


def _majority() -> RiverClassifier:
    return FrequencyBaseline("all")


def _persistence() -> RiverClassifier:
    return FrequencyBaseline("persistence")


def _ta_rule() -> RiverClassifier:
    return FrequencyBaseline("ta")


_INPUTS = f"inputs v{INPUTS_VERSION}"

CATALOG: dict[str, CatalogEntry] = {
    e.name: e
    for e in (
        CatalogEntry(
            "logreg", 1, "model", f"StandardScaler | LogisticRegression(SGD 0.01, l2 1e-4); {_INPUTS}", _logreg
        ),
        CatalogEntry(
            "hat", 1, "model", f"HoeffdingAdaptiveTree(grace 200, delta 1e-5, naive Bayes adaptive); {_INPUTS}", _hat
        ),
        CatalogEntry("arf", 1, "model", f"AdaptiveRandomForest(10 trees, ADWIN per tree); {_INPUTS}", _arf),
        CatalogEntry("majority", 1, "baseline", "running share of up labels", _baseline("all")),
        CatalogEntry("persistence", 1, "baseline", "P(up | sign of last return)", _baseline("persistence")),
        CatalogEntry("ta_rule", 1, "baseline", "P(up | MACD sign x RSI zone)", _baseline("ta")),
    )
}


def entry(name: str) -> CatalogEntry:
    """The catalog entry ``name``, or a ``KeyError`` naming the known ones.

    >>> entry("nope")
    Traceback (most recent call last):
    ...
    KeyError: "no model 'nope' in the catalog; known: ['arf', 'hat', 'logreg', 'majority', 'persistence', 'ta_rule']"
    """
    try:
        return CATALOG[name]
    except KeyError:
        raise KeyError(f"no model {name!r} in the catalog; known: {sorted(CATALOG)}") from None
