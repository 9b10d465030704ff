"""Griffe extension: the reStructuredText bits of jaxlosses docstrings, as Markdown.

The docstrings are written for ``help()`` and doctest (Google style with a few
reStructuredText constructs, as in optax). mkdocstrings renders docstrings as Markdown, so
before griffe parses a docstring this extension rewrites, in the docs only:

- ``.. math::`` followed by an indented block -> a ``$$ ... $$`` display block
  (rendered by ``pymdownx.arithmatex`` and KaTeX);
- ``:math:`x``` -> ``$x$``;
- ``:func:`name``` (and ``:class:``, ``:mod:``, ``:meth:``, ``:attr:``, ``:data:``) ->
  a cross-reference ``[`name`][jaxlosses.name]`` to the documented object (a bare name
  is looked up in the ``__all__`` of the object's public module, then of its parents),
  or plain code for a private target (a name with a component starting with ``_``);
- a paragraph ending in ``::`` followed by an indented block -> ``:`` and a fenced
  ``python`` code block;
- the ``Example:`` heading -> ``Examples:``, so that griffe parses the doctests as code.

The source docstrings are left as they are.
"""

from __future__ import annotations

import functools
import importlib
import os
import re
import sys
import textwrap
from typing import Any

try:
    import griffe
except ImportError:  # the converter itself is used (and tested) without the docs extra
    griffe = None

_ROLE = re.compile(r":(func|class|mod|meth|attr|data|obj):`~?([^`]+)`")
_MATH_ROLE = re.compile(r":math:`([^`]+)`")
_PACKAGE = "jaxlosses"
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _take_block(lines: list[str], start: int, base: int) -> tuple[list[str], int]:
    """The lines after ``start`` indented deeper than ``base`` (blank lines included)."""
    block = []
    i = start
    while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > base):
        block.append(lines[i])
        i += 1
    while block and not block[-1].strip():  # trailing blank lines belong to what follows
        block.pop()
        i -= 1
    return block, i


@functools.cache
def _public_all(module: str) -> list[str]:
    """The ``__all__`` of a public module of the package (imported from this checkout)."""
    if _ROOT not in sys.path:
        sys.path.insert(0, _ROOT)
    try:
        return list(getattr(importlib.import_module(module), "__all__", []))
    except ImportError:
        return []


def _target(name: str, path: str) -> str | None:
    """The identifier a role points at, or None for private objects (shown as code).

    A bare name is looked up like Python would from the documented object: in the
    ``__all__`` of its public module, then of the enclosing public packages; failing
    that it means the top-level ``jaxlosses.name`` (and a wrong guess fails the strict
    build with the name in the message).
    """
    if any(part.startswith("_") for part in name.split(".")):
        return None
    if name == _PACKAGE or name.startswith(_PACKAGE + "."):
        return name
    parts = path.split(".")
    public = []
    for part in parts:
        if part.startswith("_"):
            break
        public.append(part)
    for k in range(len(public), 0, -1):
        module = ".".join(public[:k])
        if module.startswith(_PACKAGE) and name.split(".")[0] in _public_all(module):
            return f"{module}.{name}"
    return f"{_PACKAGE}.{name}"


def _convert_roles(text: str, path: str) -> str:
    text = _MATH_ROLE.sub(lambda m: f"${m.group(1).strip()}$", text)

    def link(m: re.Match) -> str:
        name = m.group(2)
        target = _target(name, path)
        if target is None:
            return f"`{name}`"
        return f"[`{name}`][{target}]"

    return _ROLE.sub(link, text)


def rst_to_markdown(text: str, path: str = _PACKAGE) -> str:
    """Rewrites the reStructuredText constructs of a docstring as Markdown."""
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        base = _indent(line)
        pad = " " * base
        if stripped == ".. math::":
            block, i = _take_block(lines, i + 1, base)
            body = textwrap.dedent("\n".join(block)).strip("\n")
            out += ["", f"{pad}$$"] + [pad + b for b in body.splitlines()] + [f"{pad}$$", ""]
            continue
        if stripped.endswith("::") and not stripped.startswith(".."):
            block, j = _take_block(lines, i + 1, base)
            if block and any(b.strip() for b in block):
                out.append(line[:-1] if stripped != "::" else "")
                body = textwrap.dedent("\n".join(block)).strip("\n")
                out += ["", f"{pad}```python"] + [pad + b if b else b for b in body.splitlines()]
                out += [f"{pad}```", ""]
                i = j
                continue
        if stripped == "Example:" and base == 0:
            line = "Examples:"
        out.append(line)
        i += 1
    converted = "\n".join(out)
    # Roles are converted outside the fenced code and doctest lines only.
    parts = re.split(r"(```python\n.*?```)", converted, flags=re.DOTALL)
    for k in range(0, len(parts), 2):
        parts[k] = "\n".join(
            ln if ln.lstrip().startswith((">>>", "...")) else _convert_roles(ln, path)
            for ln in parts[k].split("\n")
        )
    return "".join(parts)


if griffe is not None:

    class RstToMarkdown(griffe.Extension):
        """Converts the docstrings of every loaded object (see the module docstring)."""

        def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
            if obj.docstring is not None:
                obj.docstring.value = rst_to_markdown(obj.docstring.value, obj.path)
