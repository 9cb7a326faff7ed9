"""metapool: reproducible random-effects meta-analysis, checked against R metafor."""

__version__ = "0.1.0"

from .pooling import PoolResult, pool_generic, pool_proportions  # noqa: E402

__all__ = ["PoolResult", "pool_generic", "pool_proportions", "__version__"]
