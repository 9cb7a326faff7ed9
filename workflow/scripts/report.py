"""Write the report: rules `report` (HTML) and `report_pdf` (workflow/rules/report.smk).

Thin adapter over metapool.report; analyses appear in config order. Figures other rules
may draw (funnel, leave-one-out, cumulative, sensitivity, PRISMA, risk of bias) arrive
only when the workflow makes them (see report.smk) and are embedded when present.
"""

import json
import logging
import platform
import sys
from importlib import metadata
from pathlib import Path

#: Software the report names besides the analysis documents' own versions.
REPORT_PACKAGES = ("snakemake", "matplotlib", "jinja2", "weasyprint")


def _versions():
    """Python and the packages of REPORT_PACKAGES that are installed."""
    out = {"Python": platform.python_version()}
    for name in REPORT_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def _plain(value):
    """A table cell as plain data: NaN/NA become None, numpy scalars Python numbers."""
    try:
        import pandas as pd

        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return value.item() if hasattr(value, "item") else value


def _tables(paths, km_dir=None):
    """Input-table warnings (as text), studies.csv rows and risk_of_bias.csv rows (None
    when no risk-of-bias table is configured), from the validated tables."""
    from metapool.io import load_tables

    tables = load_tables(**paths, km_dir=km_dir)
    warnings = []
    for issue in tables.warnings:
        where = [Path(str(issue.file)).name]
        if getattr(issue, "row", None) is not None:
            where.append(f"row {issue.row}")
        if getattr(issue, "column", None):
            where.append(f"column {issue.column}")
        study = getattr(issue, "study_id", None)
        prefix = ", ".join(where) + (f" ({study})" if study else "")
        warnings.append(f"{prefix}: {issue.message}")
    studies = [
        {key: _plain(value) for key, value in row.items()}
        for row in tables.studies.to_dict(orient="records")
    ]
    rob = None
    if tables.risk_of_bias is not None:
        rob = [
            {key: _plain(value) for key, value in row.items()}
            for row in tables.risk_of_bias.to_dict(orient="records")
        ]
    return warnings, studies, rob


def html(snakemake):
    from metapool.history import hash_inputs
    from metapool.report import write_report

    with open(snakemake.input.left_out, encoding="utf-8") as f:
        left_out = json.load(f)  # excluded and ongoing studies per analysis
    docs = []
    for path in snakemake.input.documents:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
        docs.append({**doc, **left_out[doc["analysis"]]})
    analyses = snakemake.params.analyses
    figures = dict(zip(analyses, snakemake.input.figures))
    present = set(map(str, snakemake.input.extra_figures))
    extra = {
        name: {
            kind: path
            for kind in snakemake.params.extra_kinds
            if (path := f"results/{name}/{kind}.svg") in present
        }
        for name in analyses
    }
    prisma = snakemake.input.prisma[0] if snakemake.input.prisma else None
    with open(snakemake.input.changes, encoding="utf-8") as f:
        changes = json.load(f)
    paths = dict(zip(snakemake.params.table_names, snakemake.input.tables))
    table_warnings, studies, rob = _tables(paths, snakemake.params.km_dir)
    rob_figures = {
        Path(str(path)).stem: str(path) for path in snakemake.input.risk_of_bias
    }
    write_report(
        docs,
        figures,
        snakemake.output[0],
        title=snakemake.params.title,
        extra_figures=extra,
        prisma=prisma,
        grade=snakemake.params.grade,
        changes=changes,
        software=_versions(),
        inputs={str(paths[k]): v for k, v in hash_inputs(paths).items()},
        study_records=studies,
        table_warnings=table_warnings,
        risk_of_bias=rob,
        rob_figures=rob_figures,
    )
    logging.info("report of %d analyses written to %s", len(docs), snakemake.output[0])


def pdf(snakemake):
    from metapool.report.pdf import write_pdf

    write_pdf(snakemake.input[0], snakemake.output[0])
    logging.info("PDF written to %s", snakemake.output[0])


def main(snakemake):
    sys.stderr = open(snakemake.log[0], "w")  # warnings and tracebacks go to the log
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(message)s")
    if snakemake.rule == "report_pdf":
        pdf(snakemake)
    else:
        html(snakemake)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 (injected by Snakemake)
