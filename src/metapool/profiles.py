"""Named method profiles: the settings of a reference tool or guideline, in one word.

A profile fixes every method choice of an analysis; keys set explicitly in the config
override it. The methods paragraph of the report names the profile and each choice, so
the same numbers can be reproduced in the reference tool.

Profiles
--------
``cochrane2025``
    Cochrane Handbook ch. 10 / RevMan (January 2025): REML tau² with a Q-profile CI,
    Hartung-Knapp-Sidik-Jonkman CI, t-based prediction interval (k-1 df), I² from tau².
    Single proportions: binomial-normal GLMM (no continuity correction) with a t-based
    CI and PI (k-1 df), since HKSJ is not defined for the GLMM.
``revman5``
    RevMan 5: DerSimonian-Laird, Wald CI, no prediction interval, I² from Q. For single
    proportions (which RevMan 5 pools only as generic inverse variance) the logit.
``metafor``
    R metafor's ``rma()`` defaults: REML, Wald (z) CI, normal prediction interval, I²
    from tau²; proportions as logits (``escalc(measure="PLO")``).
``meta``
    R meta 8 defaults: ``metagen``: REML, Wald CI, t-based prediction interval (method
    "V", k-1 df), I² from Q; ``metaprop``: GLMM with a Wald CI.

References
----------
.. [1] Higgins JPT et al. (eds). Cochrane Handbook for Systematic Reviews of
   Interventions, version 6.5, chapter 10 (2024), and the Cochrane Statistical Methods
   Group's random-effects methods guidance implemented in RevMan (January 2025).
.. [2] Viechtbauer W. metafor: ``rma.uni`` defaults.
.. [3] Schwarzer G. meta: ``settings.meta()`` and ``gs()`` defaults (meta 8.x).
"""

from __future__ import annotations

__all__ = ["PROFILES", "DEFAULT_PROFILE", "profile_settings", "describe_profile"]

DEFAULT_PROFILE = "cochrane2025"

#: Settings per profile and table kind ("proportions" or "survival").
PROFILES = {
    "cochrane2025": {
        "label": "Cochrane Handbook 2025 / RevMan random-effects methods",
        "proportions": {"measure": "PLO", "method": "GLMM", "ci": "t", "pi": "t",
                        "i2": "tau2"},
        "survival": {"method": "REML", "ci": "hksj", "pi": "t", "i2": "tau2"},
    },
    "revman5": {
        "label": "RevMan 5 (DerSimonian-Laird, Wald CI, no prediction interval)",
        "proportions": {"measure": "PLO", "method": "DL", "ci": "z", "pi": "none",
                        "i2": "q"},
        "survival": {"method": "DL", "ci": "z", "pi": "none", "i2": "q"},
    },
    "metafor": {
        "label": "R metafor rma() defaults",
        "proportions": {"measure": "PLO", "method": "REML", "ci": "z", "pi": "z",
                        "i2": "tau2"},
        "survival": {"method": "REML", "ci": "z", "pi": "z", "i2": "tau2"},
    },
    "meta": {
        "label": "R meta 8 defaults (metagen / metaprop)",
        "proportions": {"measure": "PLO", "method": "GLMM", "ci": "z", "pi": "t",
                        "i2": "q"},
        "survival": {"method": "REML", "ci": "z", "pi": "t", "i2": "q"},
    },
}


def profile_settings(name, table):
    """The method settings a profile gives an analysis of ``table``.

    Raises
    ------
    ValueError
        For an unknown profile or table.
    """
    if name not in PROFILES:
        raise ValueError(f"unknown method profile {name!r}; choose one of {sorted(PROFILES)}")
    if table not in ("proportions", "survival"):
        raise ValueError(f"unknown table {table!r}")
    return dict(PROFILES[name][table])


def describe_profile(name):
    """One-line description of a profile for the methods text."""
    return PROFILES[name]["label"]
