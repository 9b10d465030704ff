"""MkDocs hooks: draw the figures before the pages are collected.

``on_pre_build`` runs ``docs/make_figures.py``, which redraws only missing or stale figures
(seconds; nothing on a rebuild of ``mkdocs serve`` that changed no input), so a bare
``mkdocs build`` of a fresh checkout has every picture the pages embed.
"""

from __future__ import annotations

import importlib.util
import logging
import pathlib

log = logging.getLogger("mkdocs.hooks.figures")


def _make_figures():
    path = pathlib.Path(__file__).resolve().parent / "make_figures.py"
    spec = importlib.util.spec_from_file_location("jaxlosses_docs_make_figures", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def on_pre_build(config, **kwargs) -> None:
    written = _make_figures().draw()
    if written:
        log.info("drew %s", ", ".join(p.name for p in written))
