"""Self-contained HTML report of all analyses, and the same page as a PDF.

See :func:`metapool.report.render.render_report` (HTML; the report-level sections are
built in :mod:`metapool.report.sections`) and :func:`metapool.report.pdf.write_pdf`
(WeasyPrint, imported only when a PDF is made).
"""

from metapool.report.pdf import PDFError, render_pdf, write_pdf
from metapool.report.render import render_report, write_report

__all__ = ["PDFError", "render_pdf", "render_report", "write_pdf", "write_report"]
