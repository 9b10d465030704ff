"""The documentation is complete and its code is true.

- Every public name (``jaxlosses.__all__`` and the ``__all__`` of each public submodule it
  lists) appears in a ``::: identifier`` directive under ``docs/``, or is a member of one.
- Every public function and class has a docstring with a one-line summary and an
  ``Example`` section of doctests (which ``--doctest-modules`` runs).
- Every ```` ```python ```` block of every page runs, in order, per page; a block followed
  directly by a ```` ```text ```` block must print exactly that text.

The site itself is built by ``mkdocs build --strict`` in ``.ci/run``.

Print what a page's blocks print (to paste outputs):
``python tests/test_docs.py docs/guides/from_optax.md``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import io
import pathlib
import re
import sys
import textwrap
import types

import pytest
import yaml

import jaxlosses

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


# --------------------------------------------------------------------------------------
# the public API and what the pages document


def public_api(package: types.ModuleType = jaxlosses) -> dict[str, object]:
    """``{qualified name: object}`` for every public name, submodules' included."""
    api = {}
    for name in package.__all__:
        obj = getattr(package, name)
        api[f"{package.__name__}.{name}"] = obj
        if inspect.ismodule(obj):
            assert hasattr(obj, "__all__"), (
                f"public submodule {obj.__name__} must define __all__ (its documented API)"
            )
            for sub in obj.__all__:
                api[f"{obj.__name__}.{sub}"] = getattr(obj, sub)
    return api


_DIRECTIVE = re.compile(r"^(?P<indent>[ \t]*):::[ \t]+(?P<id>[\w.]+)[ \t]*$")


def directives(text: str) -> list[tuple[str, dict]]:
    """The ``::: identifier`` directives of a page, each with its YAML options."""
    lines = text.splitlines()
    found = []
    for i, line in enumerate(lines):
        m = _DIRECTIVE.match(line)
        if not m:
            continue
        indent = len(m.group("indent"))
        block = []
        for nxt in lines[i + 1 :]:
            if nxt.strip() and len(nxt) - len(nxt.lstrip()) <= indent:
                break
            block.append(nxt)
        options = yaml.safe_load(textwrap.dedent("\n".join(block))) or {}
        found.append((m.group("id"), options.get("options", {}) or {}))
    return found


def documented(pages: dict[str, str], api: dict[str, object]) -> dict[str, str]:
    """``{identifier: page}`` for what the directives render, module members included.

    A directive for a module renders the members in its ``__all__`` unless its
    ``members`` option is ``false`` or a list (then only those), as mkdocstrings does.
    """
    seen = {}
    for page, text in pages.items():
        for ident, options in directives(text):
            seen[ident] = page
            obj = api.get(ident)
            if ident == jaxlosses.__name__:
                obj = jaxlosses
            if not inspect.ismodule(obj):
                continue
            members = options.get("members", None)
            if members is False:
                continue
            names = obj.__all__ if members in (None, True) else members
            for name in names:
                seen.setdefault(f"{obj.__name__}.{name}", page)
    return seen


def _pages() -> dict[str, str]:
    return {str(p.relative_to(DOCS)): p.read_text() for p in sorted(DOCS.rglob("*.md"))}


def test_every_public_name_is_documented():
    api = public_api()
    seen = documented(_pages(), api)
    missing = sorted(set(api) - set(seen))
    assert not missing, (
        "public names without a `::: name` directive in docs/ (add a page with "
        f"`::: jaxlosses.module` and a nav entry in mkdocs.yml): {missing}"
    )


def test_directives_name_public_objects():
    # Pages document the public names (jaxlosses.x), not the private modules that
    # define them, so that anchors and cross-references are the names users import.
    api = public_api()
    for page, text in _pages().items():
        for ident, _ in directives(text):
            assert ident in api or ident == "jaxlosses", f"{page}: `::: {ident}` is not public"


def test_the_completeness_check_catches_an_undocumented_name():
    mod = types.ModuleType("jaxlosses.fake")
    mod.__all__ = ["a", "b"]
    mod.a = mod.b = len
    api = {"jaxlosses.f": len, "jaxlosses.fake": mod, "jaxlosses.fake.a": len}
    api["jaxlosses.fake.b"] = len
    page = "::: jaxlosses.fake\n    options:\n      members: [a]\n"
    seen = documented({"p.md": page}, api)
    assert set(api) - set(seen) == {"jaxlosses.f", "jaxlosses.fake.b"}
    seen = documented({"p.md": page.split("\n")[0] + "\n::: jaxlosses.f\n"}, api)
    assert set(api) == set(seen)
    seen = documented({"p.md": "::: jaxlosses.fake\n    options:\n      members: false\n"}, api)
    assert set(seen) == {"jaxlosses.fake"}


def _summary_and_example(name: str, obj: object) -> list[str]:
    # The object's own docstring: inspect.getdoc would fall back to a base class's.
    doc = inspect.cleandoc(getattr(obj, "__doc__", None) or "")
    lines = doc.splitlines()
    problems = []
    if not lines or not lines[0].strip():
        return [f"{name}: no docstring"]
    if len(lines) > 1 and lines[1].strip():
        problems.append(f"{name}: the summary must be one line followed by a blank line")
    if not lines[0].rstrip().endswith("."):
        problems.append(f"{name}: the summary line must be a sentence ending in '.'")
    if callable(obj) and not inspect.ismodule(obj):
        m = re.search(r"^Examples?:[ \t]*$(?P<body>.*)", doc, re.M | re.S)
        if not m or ">>>" not in m.group("body"):
            problems.append(f"{name}: no 'Example:' section with doctests")
    return problems


def test_public_docstrings_have_a_summary_and_an_example():
    problems = []
    for name, obj in public_api().items():
        problems += _summary_and_example(name, obj)
    problems += _summary_and_example("jaxlosses", jaxlosses)
    assert not problems, "\n".join(problems)


def test_the_docstring_check_catches_a_missing_example():
    def f():
        """Does something.

        Args:
          nothing.
        """

    def g():
        """Does something
        across two lines."""

    assert _summary_and_example("f", f) == ["f: no 'Example:' section with doctests"]
    assert len(_summary_and_example("g", g)) == 3


def test_doctests_run_in_the_test_suite():
    tomllib = pytest.importorskip("tomllib")
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]
    options = config["ini_options"]
    assert "--doctest-modules" in options["addopts"].split()
    assert "jaxlosses" in options["testpaths"]


# --------------------------------------------------------------------------------------
# docstrings as the site renders them


def _load_docs_module(name: str):
    spec = importlib.util.spec_from_file_location(f"_docs_{name}", DOCS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_REST_LEFT = re.compile(r"^\s*\.\. [\w-]+::|:(func|class|mod|meth|attr|data|obj|math):`", re.M)


def test_docstrings_convert_to_markdown_without_rest_left():
    # docs/griffe_rst.py turns the reST of the docstrings into Markdown for the site; a
    # construct it does not know (e.g. `.. note::`) would show up raw on the page.
    convert = _load_docs_module("griffe_rst").rst_to_markdown
    objects = {"jaxlosses": jaxlosses, **public_api()}
    for name, obj in objects.items():
        text = convert(inspect.cleandoc(getattr(obj, "__doc__", None) or ""), name)
        left = [m.group(0) for m in _REST_LEFT.finditer(text)]
        assert not left, f"{name}: reStructuredText the site would show raw: {left}"


def test_rest_conversion():
    convert = _load_docs_module("griffe_rst").rst_to_markdown
    doc = (
        "Sums.\n\n.. math::\n    a = b\n\nSee :func:`log_softmax`, :math:`x^2` and "
        ":mod:`jaxlosses._core`::\n\n    y = f(x)\n\nExample:\n  >>> 1 + 1\n  2\n"
    )
    want = (
        "Sums.\n\n\n$$\na = b\n$$\n\n\nSee [`log_softmax`][jaxlosses.log_softmax], $x^2$ "
        "and `jaxlosses._core`:\n\n```python\ny = f(x)\n```\n\n\nExamples:\n  >>> 1 + 1\n  2"
    )
    assert convert(doc, "jaxlosses.f") == want
    assert _REST_LEFT.search(convert(".. note::\n    careful\n"))


# --------------------------------------------------------------------------------------
# figures


def test_pages_embed_only_figures_that_make_figures_draws():
    drawn = set(_load_docs_module("make_figures").FIGURES_BY_NAME)
    for page, text in _pages().items():
        for name in re.findall(r"\]\([^)\s]*figures/([\w.-]+\.png)\)", text):
            if name.startswith("bench_"):
                stem = name[len("bench_") : -len(".png")]
                assert (DOCS / "benchmarks" / f"{stem}.json").exists(), (page, name)
            else:
                assert name in drawn, f"{page} embeds figures/{name}, which nothing draws"


# --------------------------------------------------------------------------------------
# the code of the pages


_FENCE = re.compile(
    r"^(?P<indent>[ \t]*)```(?P<lang>[\w-]*)[^\n]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$",
    re.M | re.S,
)


def _dedent(body: str, indent: str) -> str:
    return "\n".join(ln[len(indent) :] for ln in body.split("\n"))


def code_blocks(text: str) -> list[tuple[int, str, str, str | None]]:
    """``(line, language, code, expected output)`` for each fenced block of a page.

    A ``text`` block that directly follows a ``python`` block (blank lines only between)
    is that block's expected output, and is not returned on its own.
    """
    fences = list(_FENCE.finditer(text))
    blocks = []
    skip = set()
    for k, m in enumerate(fences):
        if k in skip:
            continue
        line = text.count("\n", 0, m.start("body")) + 1
        body = _dedent(m.group("body"), m.group("indent"))
        expected = None
        if k + 1 < len(fences) and m.group("lang") == "python":
            nxt = fences[k + 1]
            if nxt.group("lang") == "text" and not text[m.end() : nxt.start()].strip():
                expected = _dedent(nxt.group("body"), nxt.group("indent")).rstrip()
                skip.add(k + 1)
        blocks.append((line, m.group("lang"), body, expected))
    return blocks


def run_page(path: pathlib.Path, *, check: bool = True) -> list[str]:
    """Runs the page's ``python`` blocks in one namespace; returns what each printed."""
    namespace = {"__name__": f"docs:{path.name}"}
    printed = []
    for line, lang, code, expected in code_blocks(path.read_text()):
        if lang != "python":
            continue
        out = io.StringIO()
        # pad with blank lines so that tracebacks give the line numbers of the page
        compiled = compile("\n" * (line - 1) + code, str(path), "exec")
        with contextlib.redirect_stdout(out):
            exec(compiled, namespace)
        got = "\n".join(ln.rstrip() for ln in out.getvalue().rstrip().splitlines())
        printed.append(got)
        if check and expected is not None:
            want = "\n".join(ln.rstrip() for ln in expected.splitlines())
            assert got == want, f"{path.name}:{line}: printed\n{got}\nbut the page shows\n{want}"
    return printed


PAGES_WITH_CODE = sorted(
    p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md") if "```python" in p.read_text()
)


@pytest.mark.parametrize("page", PAGES_WITH_CODE)
def test_page_code_runs_and_prints_what_the_page_shows(page):
    run_page(DOCS / page)


def test_guides_have_code():
    guides = {p for p in PAGES_WITH_CODE if p.startswith("guides/")}
    assert guides == {f"guides/{p.name}" for p in (DOCS / "guides").glob("*.md")}, (
        "every guide shows runnable code"
    )


def test_code_blocks_pair_outputs(tmp_path):
    text = "```python\nprint(1)\n```\n\n```text\n1\n```\n```python\nx = 2\n```\n"
    blocks = code_blocks(text)
    assert [(b[1], b[3]) for b in blocks] == [("python", "1"), ("python", None)]
    indented = "    ```python\n    print(2)\n    ```\n    ```text\n    2\n    ```\n"
    assert [(b[2], b[3]) for b in code_blocks(indented)] == [("print(2)\n", "2")]
    page = tmp_path / "page.md"
    page.write_text("```python\nprint(3)\n```\n\n```text\n4\n```\n")
    with pytest.raises(AssertionError, match="printed"):
        run_page(page)


if __name__ == "__main__":
    for i, out in enumerate(run_page(pathlib.Path(sys.argv[1]), check=False)):
        print(f"--- block {i}\n{out}")
