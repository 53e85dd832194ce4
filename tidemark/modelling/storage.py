"""Whether a fitted model can be stored and loaded without running code (skops, no pickle).

MLflow stores a model in skops' format, and every process that serves it loads it with skops'
default trusted types plus :data:`TRUSTED_TYPES`, never with pickle: scikit-learn's estimators,
numpy's and scipy's arrays and ufuncs, Python's plain containers. A model holding anything else
(a class of the user's own module, a ``FunctionTransformer`` of a plain Python function, a
third-party library's estimator) cannot be loaded that way: ``skops.io.load`` raises
``UntrustedTypesFoundException`` naming the types, MLflow's ``log_model`` refuses to store it,
and a serving process keeps its last model. :func:`check_storable` refuses it before that.
"""

from __future__ import annotations

from typing import Any

# Beyond skops' defaults. A numpy dtype is rebuilt from an empty array with numpy's own
# loader, no pickle; skops does not trust it by default yet (skops-dev/skops#224), and
# scikit-learn's SimpleImputer, which fills an optional number, remembers the dtype it saw.
# Whoever stores or loads a model passes these: log_model(skops_trusted_types=...),
# load_model(skops_trusted_types=...), skops.io.load(trusted=...).
TRUSTED_TYPES: tuple[str, ...] = ("numpy.dtype",)


class UntrustedModelError(ValueError):
    """A fitted model that skops would not load with the trusted types."""


def untrusted_types(model: Any) -> list[str]:
    """The types of ``model`` that skops would not load with its defaults and TRUSTED_TYPES."""
    import skops.io

    found: list[str] = skops.io.get_untrusted_types(data=skops.io.dumps(model))
    return [name for name in found if name not in TRUSTED_TYPES]


def check_storable(model: Any) -> None:
    """Raise ``UntrustedModelError`` unless ``model`` loads with the trusted types."""
    found = untrusted_types(model)
    if found:
        raise UntrustedModelError(
            f"the model holds types that skops does not trust, so no serving process would "
            f"load it: {found}; build it from scikit-learn estimators and numpy ufuncs only"
        )
