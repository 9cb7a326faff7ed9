"""metapool: reproducible random-effects meta-analysis, checked against R metafor.

The public API: :func:`pool_proportions` and :func:`pool_generic` fit one meta-analysis
(results with ``to_dict("model")`` and ``to_dict("natural")``); the secondary analyses
live in :mod:`metapool.subgroups`, :mod:`metapool.metareg`, :mod:`metapool.sensitivity`
and :mod:`metapool.bias`; :data:`PROFILES` holds the named method profiles. See
``docs/methods.md``.
"""

__version__ = "0.1.0"

from .pooling import PoolResult, pool_generic, pool_proportions  # noqa: E402
from .batch import pool_generic_batch, pool_proportions_batch  # noqa: E402
from .glmm import GLMMConvergenceError, GLMMResult, fit_glmm  # noqa: E402
from .profiles import PROFILES  # noqa: E402

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
