"""Render analysis documents into one self-contained HTML report.

The report is built from the analysis documents (``results/<analysis>/analysis.json``,
see ``docs/architecture.md``) and the forest plots written by :mod:`metapool.plots`.
Everything the page needs is inside the HTML file: CSS is inline, figures are embedded
as ``data:`` URIs (an SVG shown through ``<img>`` can never run script in the page) and a
Content-Security-Policy forbids scripts and any external load. The only external URLs
are ``https://doi.org/`` links, which are plain anchors.

Every text that comes from the data passes through Jinja2 autoescaping; numbers are
formatted by the filters defined here (shared with :mod:`metapool.plots` so the figure
and the report print the same values). Missing values render as an em dash, never as
``nan`` or ``None``.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from metapool.formatting import (
    DASH,
    EN_DASH,
    is_missing,
    as_float,
    is_proportion_measure,
    fmt_ratio,
    fmt_effect,
    fmt_interval,
    fmt_effect_ci,
    fmt_p,
    p_phrase,
    fmt_tau2,
    fmt_pct,
    fmt_num,
    fmt_int,
    fmt_level,
    heterogeneity_text,
    weight_basis,
    doi_url,
    is_yes,
)

__all__ = ["render_report", "write_report", "REQUIRED_KEYS"]

#: Top-level keys every analysis document must have.
REQUIRED_KEYS = (
    "analysis",
    "title",
    "table",
    "outcome",
    "measure",
    "effect_label",
    "scale",
    "methods",
    "models",
    "studies",
    "excluded",
    "ongoing",
    "warnings",
    "software",
)

_TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"

def _dash(value: Any) -> Any:
    """Jinja filter: the value itself, or ``"—"`` when missing."""
    return DASH if is_missing(value) else value


def _text(value: Any) -> str:
    """Jinja filter: a list as comma-separated text, booleans as yes/no, missing as ``"—"``."""
    if isinstance(value, (list, tuple)):
        items = [str(v) for v in value if not is_missing(v)]
        return ", ".join(items) if items else DASH
    if isinstance(value, bool):
        return "yes" if value else "no"
    return DASH if is_missing(value) else str(value)


# --------------------------------------------------------------------------- documents


def _check_doc(doc: Mapping[str, Any]) -> None:
    """Raise ValueError when a document lacks a top-level key or an overall model."""
    missing = [key for key in REQUIRED_KEYS if key not in doc]
    if missing:
        name = doc.get("analysis", "<unnamed>")
        raise ValueError(f"analysis document {name!r} lacks keys: {', '.join(missing)}")
    if not doc["models"]:
        raise ValueError(f"analysis document {doc['analysis']!r} has no pooled rows")


def _figure_uri(figure: Any) -> str | None:
    """Encode a figure (path, SVG/PNG bytes or SVG text) as a ``data:`` URI."""
    if figure is None:
        return None
    if isinstance(figure, (bytes, bytearray)):
        data = bytes(figure)
    elif isinstance(figure, str) and figure.lstrip().startswith("<"):
        data = figure.encode("utf-8")
    elif isinstance(figure, (str, os.PathLike)):
        data = Path(figure).read_bytes()
    else:
        raise TypeError(f"figure must be a path, bytes or SVG text, not {type(figure).__name__}")
    mime = "image/png" if data.startswith(b"\x89PNG") else "image/svg+xml"
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


def _anchor(slug: str, used: set[str]) -> str:
    """HTML id for an analysis section, unique within the page."""
    base = "analysis-" + (re.sub(r"[^A-Za-z0-9_-]+", "-", str(slug)).strip("-") or "x")
    anchor, n = base, 2
    while anchor in used:
        anchor, n = f"{base}-{n}", n + 1
    used.add(anchor)
    return anchor


def _row_warnings(doc: Mapping[str, Any]) -> list[str]:
    """Document warnings followed by the pooled rows' warnings, without duplicates."""
    out: list[str] = []
    for text in doc.get("warnings") or []:
        if not is_missing(text) and str(text) not in out:
            out.append(str(text))
    for row in doc["models"]:
        label = "overall" if row.get("model") == "overall" else f"subgroup {row.get('subgroup')}"
        for part in str(row.get("warnings") or "").split(";"):
            part = part.strip()
            if part:
                text = f"{label}: {part}"
                if text not in out:
                    out.append(text)
    return out


#: Readable names of ``effect_method`` codes; unknown codes are shown as they are.
EFFECT_METHODS = {
    "logit": "logit of events/total",
    "hr_ci": "HR and CI as reported",
    "hr_p": "HR with SE from the p-value",
}


def _how_obtained(study: Mapping[str, Any]) -> list[str]:
    """Short notes on how a study's effect was obtained."""
    notes = []
    method = study.get("effect_method")
    if not is_missing(method):
        name = EFFECT_METHODS.get(str(method).split(" ")[0])
        notes.append(f"{name} ({method})" if name else f"effect: {method}")
    if not is_missing(study.get("study_ci_method")):
        notes.append(f"CI: {study['study_ci_method']}")
    if is_yes(study.get("cc_added")):
        notes.append("continuity correction added")
    derivation = study.get("derivation")
    if is_yes(study.get("derived")):
        notes.append("derived" + ("" if is_missing(derivation) else f": {derivation}"))
    elif not is_missing(derivation):
        notes.append(str(derivation))
    return notes


def _reported_text(study: Mapping[str, Any], measure: str) -> str:
    """Data column of a study: ``events/total`` or the reported ratio with CI/p."""
    if is_proportion_measure(measure):
        if is_missing(study.get("events")) or is_missing(study.get("total")):
            return DASH
        return f"{fmt_int(study['events'])}/{fmt_int(study['total'])}"
    value = study.get("hr")
    if as_float(value) is None:
        return DASH
    text = fmt_ratio(float(value))
    lo, hi = as_float(study.get("hr_lower")), as_float(study.get("hr_upper"))
    if lo is not None and hi is not None:
        level = study.get("ci_level")
        lvl = "" if as_float(level) in (None, 0.95, 95.0) else f"; {fmt_level(level)} CI"
        text += f" ({fmt_ratio(lo)}{EN_DASH}{fmt_ratio(hi)}{lvl})"
    elif not is_missing(study.get("p_value")):
        text += f"; {p_phrase(study.get('p_value'))}"
    return text


def _methods_paragraphs(text: Any) -> list[str]:
    """Split the methods text into paragraphs at blank lines."""
    if is_missing(text):
        return []
    return [p.strip() for p in re.split(r"\n\s*\n", str(text)) if p.strip()]


def _software(docs: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """Union of the documents' software versions, sorted by package name."""
    versions: dict[str, list[str]] = {}
    for doc in docs:
        for pkg, ver in (doc.get("software") or {}).items():
            seen = versions.setdefault(str(pkg), [])
            if str(ver) not in seen:
                seen.append(str(ver))
    return [
        (pkg, " / ".join(vers))
        for pkg, vers in sorted(versions.items(), key=lambda kv: kv[0].lower())
    ]


def _context(doc: Mapping[str, Any], figure: Any, anchor: str) -> dict[str, Any]:
    """Everything the template needs for one analysis section."""
    measure = str(doc["measure"])
    models = list(doc["models"])
    overall = next((m for m in models if m.get("model") == "overall"), models[0])
    subgroups = [m for m in models if m is not overall]
    has_subgroups = bool(subgroups) or any(
        not is_missing(s.get("subgroup")) for s in doc["studies"]
    )
    studies = []
    for s in doc["studies"]:
        studies.append(
            {
                "row": s,
                "doi_url": doi_url(s.get("doi")),
                "reported": _reported_text(s, measure),
                "how": _how_obtained(s),
            }
        )
    methods = doc["methods"] or {}
    pooled = overall.get("status") == "pooled" and as_float(overall.get("estimate")) is not None
    single_effect = None
    if not pooled and len(doc["studies"]) == 1:
        s = doc["studies"][0]
        single_effect = fmt_effect_ci(
            s.get("effect"), s.get("ci_lower"), s.get("ci_upper"), measure
        )
    return {
        "doc": doc,
        "anchor": anchor,
        "measure": measure,
        "proportion": is_proportion_measure(measure),
        "level": fmt_level(methods.get("level", overall.get("level"))),
        "overall": overall,
        "models": [overall, *subgroups],
        "has_subgroups": has_subgroups,
        "studies": studies,
        "figure_uri": _figure_uri(figure),
        "warnings": _row_warnings(doc),
        "methods_paragraphs": _methods_paragraphs(methods.get("text")),
        "pooled": pooled,
        "single_effect": single_effect,
        "weight_basis": weight_basis(doc["studies"], bool(subgroups)),
    }


def _environment() -> Environment:
    """Jinja2 environment: autoescaping everywhere, strict undefined, our filters."""
    env = Environment(
        loader=FileSystemLoader(str(_TEMPLATE_DIR)),
        autoescape=select_autoescape(
            enabled_extensions=("html", "htm", "xml"), default_for_string=True, default=True
        ),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(
        effect=fmt_effect,
        interval=fmt_interval,
        effect_ci=fmt_effect_ci,
        pvalue=fmt_p,
        tau2=fmt_tau2,
        pct=fmt_pct,
        num=fmt_num,
        count=fmt_int,
        level=fmt_level,
        dash=_dash,
        text=_text,
        heterogeneity=heterogeneity_text,
        yes=is_yes,
    )
    env.tests["missing"] = is_missing
    return env


def render_report(
    docs: Sequence[Mapping[str, Any]],
    figures: Mapping[str, Any],
    *,
    title: str,
    generated_note: str = "",
) -> str:
    """Render analysis documents into one self-contained HTML page.

    Parameters
    ----------
    docs : sequence of mapping
        Analysis documents (see ``docs/architecture.md``) in the order of the config.
    figures : mapping
        ``{analysis slug: figure}``; a figure is a path to an SVG (or PNG) file, its
        bytes, or SVG text. Figures are embedded as base64 ``data:`` URIs. An analysis
        without a figure gets a visible note instead.
    title : str
        Page title.
    generated_note : str, optional
        Free text for the footer (e.g. the workflow version). Nothing time-dependent is
        added by this function, so equal inputs give identical output.

    Returns
    -------
    str
        The HTML document.

    Raises
    ------
    ValueError
        When a document lacks a required top-level key or has no pooled rows.
    """
    used: set[str] = set()
    sections = []
    for doc in docs:
        _check_doc(doc)
        slug = str(doc["analysis"])
        sections.append(_context(doc, figures.get(slug), _anchor(slug, used)))
    template = _environment().get_template("report.html")
    return template.render(
        title=title,
        generated_note=generated_note,
        sections=sections,
        software=_software(docs),
        dash=DASH,
    )


def write_report(
    docs: Sequence[Mapping[str, Any]],
    figures: Mapping[str, Any],
    out_path: str | os.PathLike[str],
    *,
    title: str,
    generated_note: str = "",
) -> Path:
    """Render the report and write it as UTF-8 with ``\\n`` line endings.

    Parameters
    ----------
    docs, figures, title, generated_note
        As for :func:`render_report`.
    out_path : path-like
        Output HTML file; parent directories are created.

    Returns
    -------
    pathlib.Path
        The written path.
    """
    html = render_report(docs, figures, title=title, generated_note=generated_note)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(html)
    return out
