"""Griffe extension: the reStructuredText bits of jaxlosses docstrings, as Markdown.

The docstrings are written for ``help()`` and doctest (Google style with a few
reStructuredText constructs, as in optax). mkdocstrings renders docstrings as Markdown, so
before griffe parses a docstring this extension rewrites, in the docs only:

- ``.. math::`` followed by an indented block -> a ``$$ ... $$`` display block
  (rendered by ``pymdownx.arithmatex`` and KaTeX);
- ``:math:`x``` -> ``$x$``;
- ``:func:`name``` (and ``:class:``, ``:mod:``, ``:meth:``, ``:attr:``, ``:data:``) ->
  a cross-reference ``[`name`][jaxlosses.name]`` to the documented object, or plain code
  for a private target (a name with a component starting with ``_``);
- a paragraph ending in ``::`` followed by an indented block -> ``:`` and a fenced
  ``python`` code block;
- the ``Example:`` heading -> ``Examples:``, so that griffe parses the doctests as code.

The source docstrings are left as they are.
"""

from __future__ import annotations

import re
import textwrap
from typing import Any

import griffe

_ROLE = re.compile(r":(func|class|mod|meth|attr|data|obj):`~?([^`]+)`")
_MATH_ROLE = re.compile(r":math:`([^`]+)`")
_PACKAGE = "jaxlosses"


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


def _target(name: str, parent_path: str) -> str | None:
    """The identifier a role points at, or None for private objects (shown as code)."""
    if any(part.startswith("_") for part in name.split(".")):
        return None
    if name == _PACKAGE or name.startswith(_PACKAGE + "."):
        return name
    # Relative names in the docstrings refer to the public top-level namespace.
    del parent_path
    return f"{_PACKAGE}.{name}"


def _convert_roles(text: str, parent_path: str) -> str:
    text = _MATH_ROLE.sub(lambda m: f"${m.group(1).strip()}$", text)

    def link(m: re.Match) -> str:
        name = m.group(2)
        target = _target(name, parent_path)
        if target is None:
            return f"`{name}`"
        return f"[`{name}`][{target}]"

    return _ROLE.sub(link, text)


def rst_to_markdown(text: str, parent_path: str = _PACKAGE) -> str:
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
            ln if ln.lstrip().startswith((">>>", "...")) else _convert_roles(ln, parent_path)
            for ln in parts[k].split("\n")
        )
    return "".join(parts)


class RstToMarkdown(griffe.Extension):
    """Converts the docstrings of every loaded object (see the module docstring)."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = rst_to_markdown(obj.docstring.value, obj.path)
