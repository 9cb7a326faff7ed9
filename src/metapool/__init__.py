"""metapool: reproducible random-effects meta-analysis, checked against R metafor.

The public API: :func:`pool_proportions` and :func:`pool_generic` fit one meta-analysis
(results with ``to_dict("model")`` and ``to_dict("natural")``); the secondary analyses
live in :mod:`metapool.subgroups`, :mod:`metapool.metareg`, :mod:`metapool.sensitivity`
and :mod:`metapool.bias`; :data:`PROFILES` holds the named method profiles. See
``docs/methods.md``.
"""

import importlib

__version__ = "0.1.0"

#: public name -> the module defining it. Imported on first use (PEP 562), so that
#: ``import metapool.io`` or ``metapool.selection`` (the workflow's start-up) does
#: not pay for scipy.
_API = {
    "PoolResult": "pooling",
    "pool_generic": "pooling",
    "pool_proportions": "pooling",
    "pool_generic_batch": "batch",
    "pool_proportions_batch": "batch",
    "GLMMConvergenceError": "glmm",
    "GLMMResult": "glmm",
    "fit_glmm": "glmm",
    "PROFILES": "profiles",
}


def __getattr__(name):
    if name in _API:
        value = getattr(importlib.import_module(f".{_API[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_API])

__all__ = [
    "GLMMConvergenceError",
    "GLMMResult",
    "PROFILES",
    "PoolResult",
    "fit_glmm",
    "pool_generic",
    "pool_generic_batch",
    "pool_proportions",
    "pool_proportions_batch",
    "__version__",
]
