"""The user's model: ``module:function`` in the project file, and whether it can be stored.

A project that does not want the platform's default model names a function of its own::

    [model]
    factory = "bakery_models:loaf_model"

``loaf_model(project)`` is called with the :class:`~tidemark.project.spec.Project` and returns
an unfitted scikit-learn estimator (``fit``, ``predict``, ``get_params``; a ``Pipeline`` most
often). It is fitted on a DataFrame of the project's feature columns, in the project's order,
the segment included, an absent optional value as NaN (categories as text, numbers as float64),
and the target as a float array. It sets its own random seeds. The module must be importable
where the flows train (installed, or on ``PYTHONPATH``).

**Stored and loaded without running code.** MLflow stores the fitted model in skops' format,
and every process that serves it loads it with skops' default trusted types (and
``tidemark.modelling.storage.TRUSTED_TYPES``), never with pickle. Those cover scikit-learn's
estimators and transformers, numpy's arrays and ufuncs and Python's plain containers, but not
a class or function of the user's module, a third-party library's estimator, nor some of
scikit-learn's own inner types: tree ensembles (``sklearn.tree._tree.Tree``, the histogram
boosting's ``TreePredictor``), nearest neighbours (``KDTree``) and ``SplineTransformer``
(scipy's ``BSpline``) are all refused. Such a model cannot be loaded without running code:
skops raises ``UntrustedTypesFoundException`` naming the types. Training therefore refuses it
first, with ``UntrustedModelError`` naming the same types, before anything is registered
(:mod:`tidemark.modelling.storage`); ``storage.untrusted_types(model)`` tells beforehand.
"""

from __future__ import annotations

import importlib
from typing import Any

from tidemark.project.spec import Project


class FactoryError(ValueError):
    """The project's ``model.factory`` cannot give an estimator; says which part failed."""


def user_estimator(project: Project) -> Any:
    """The unfitted estimator that the project's ``model.factory`` returns.

    Raises ``FactoryError`` when the project names no factory, the module cannot be imported,
    it has no such function, the call fails or what it returns is not an estimator.
    """
    factory = project.model.factory
    where = f"{project.name}: model.factory {factory!r}"
    if factory is None:
        raise FactoryError(f"{project.name}: the project names no model.factory")
    module_name, function_name = factory.split(":", 1)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name is not None and f"{module_name}.".startswith(f"{error.name}."):
            raise FactoryError(
                f"{where}: no module named {error.name!r} (is it installed, or on PYTHONPATH?)"
            ) from None
        raise FactoryError(f"{where}: importing {module_name} failed: {error}") from error
    except Exception as error:
        raise FactoryError(f"{where}: importing {module_name} failed: {error!r}") from error
    function = getattr(module, function_name, None)
    if function is None:
        raise FactoryError(f"{where}: module {module_name} has no {function_name}")
    if not callable(function):
        raise FactoryError(
            f"{where}: {function_name} is a {type(function).__name__}, not a function"
        )
    try:
        estimator = function(project)
    except Exception as error:
        raise FactoryError(f"{where}: calling it with the project failed: {error!r}") from error
    missing = [name for name in ("fit", "predict", "get_params") if not hasattr(estimator, name)]
    if missing or isinstance(estimator, type):
        raise FactoryError(
            f"{where}: returned {type(estimator).__name__}, not a scikit-learn estimator "
            f"(an instance with fit, predict and get_params)"
        )
    return estimator
