"""The docs: the site builds with warnings as errors, its examples run, the notebooks run.

- ``mkdocs build --strict`` into a temporary directory exits 0 (skipped without mkdocs);
- every ``python`` block of the getting-started, CLI, API and recipe pages runs, in order, in a
  fresh directory per page (one namespace per page, ``__name__ == "__main__"``); every
  ``$ command`` line of their ``console`` blocks runs there and exits 0 (``xarray-ome-zarr``
  commands through ``cli.main`` in this process, also where a line joins them with ``;``,
  ``&&``, ``||`` or sends their stdout to a file with ``>``; everything else in a shell).
  A python block whose first line is ``# requires: module`` runs only when that module imports
  (the dask-jobqueue and dask-kubernetes examples);
- the notebooks of issue 8 are stored without outputs and run top to bottom (nbclient, as
  nbmake does). Not timed: a time limit fails under load, and speed is measured by hand
  (``benchmarks/``); a hanging cell fails at the client's per-cell timeout.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
#: Pages whose examples are run. The other pages (the in-memory model, stores, errors,
#: spatial-image, benchmarks) show placeholders such as ``s3://bucket`` and are not.
RUN_PAGES = [
    "index.md",
    "cli.md",
    "api.md",
    *sorted(p.relative_to(DOCS).as_posix() for p in (DOCS / "recipes").glob("*.md")),
]
#: Every notebook of the project, each run once by this test (so pytest needs no --nbmake).
NOTEBOOKS = sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))

FENCE = re.compile(
    r"^(?P<indent>[ ]*)```(?P<lang>[\w-]*)[^\n]*\n(?P<body>.*?)^(?P=indent)```[ ]*$",
    re.MULTILINE | re.DOTALL,
)
#: Commands with these run in a shell; plain ``xarray-ome-zarr ...`` lines run in this process.
SHELL_SYNTAX = re.compile(r"[|&;<>$`()*?]")
#: The shell's list operators, which ``_run_list`` evaluates itself.
LIST_OPERATOR = re.compile(r"\s*(;|&&|\|\|)\s*")
#: ``> FILE`` at the end of a command: its stdout goes to FILE.
STDOUT_TO = re.compile(r"\s*>\s*(?P<file>[\w./-]+)\s*$")
REQUIRES = re.compile(r"#\s*requires:\s*(?P<modules>[\w., ]+)")


def _env() -> dict[str, str]:
    """The environment of the examples: this interpreter's scripts first on PATH, no GUI."""
    env = dict(os.environ)
    scripts = str(Path(sys.executable).parent)
    env["PATH"] = scripts + os.pathsep + env.get("PATH", "")
    env["MPLBACKEND"] = "Agg"
    env["NO_MKDOCS_2_WARNING"] = "1"
    return env


# ---- the site ------------------------------------------------------------------------------
def test_mkdocs_build_strict(tmp_path):
    if importlib.util.find_spec("mkdocs") is None:
        pytest.skip("mkdocs is not installed (pip install -e '.[docs]')")
    for plugin in ("material", "mkdocstrings", "mkdocstrings_handlers.python"):
        if importlib.util.find_spec(plugin.split(".")[0]) is None:
            pytest.skip(f"{plugin} is not installed (pip install -e '.[docs]')")
    site = tmp_path / "site"
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert (site / "index.html").is_file(), output
    assert (site / "api" / "index.html").is_file(), output


# ---- the examples --------------------------------------------------------------------------
def code_blocks(text: str) -> list[tuple[str, str]]:
    """(language, dedented body) of each fenced block of a markdown page, in order."""
    return [(m["lang"], _outdent(m["body"], m["indent"])) for m in FENCE.finditer(text)]


def _outdent(body: str, indent: str) -> str:
    """A block's lines without the fence's own indentation (blocks inside admonitions)."""
    return "".join(
        line[len(indent) :] if line.startswith(indent) else line.lstrip(" ")
        for line in body.splitlines(keepends=True)
    )


def _missing_requirement(body: str) -> str | None:
    first = body.lstrip().splitlines()[0] if body.strip() else ""
    match = REQUIRES.match(first)
    if match is None:
        return None
    for module in (m.strip() for m in match["modules"].split(",")):
        if module and importlib.util.find_spec(module) is None:
            return module
    return None


def _run_console(body: str, where: str, cwd: Path) -> None:
    for line in body.splitlines():
        if not line.startswith("$ "):
            continue
        command = line[2:]
        words = shlex.split(command)
        if words[0] == "xarray-ome-zarr" and not SHELL_SYNTAX.search(command):
            # In this process: the command's own entry point is tested in test_80_cli, and
            # a fresh interpreter per line would triple the time of this test.
            status, output = _run_cli(words[1:])
        else:
            status, output = _run_list(command, cwd)
        assert status == 0, f"{where}: {command!r} exited {status}\n{output}"


def _run_cli(argv: list[str], stdout_to: Path | None = None) -> tuple[int, str]:
    from xarray_ome_zarr.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(argv)
    if stdout_to is not None:
        stdout_to.write_text(out.getvalue())
        return status, err.getvalue()
    return status, out.getvalue() + err.getvalue()


def _run_shell(command: str, cwd: Path) -> tuple[int, str]:
    result = subprocess.run(
        command, shell=True, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=300
    )
    return result.returncode, result.stdout + result.stderr


def _run_list(command: str, cwd: Path) -> tuple[int, str]:
    """A shell line, its ``xarray-ome-zarr`` commands through ``cli.main``.

    A list of commands joined by ``;``, ``&&`` or ``||`` is evaluated here as the shell does
    (left to right; ``$?`` in a shell command is the status before it), each
    ``xarray-ome-zarr ARGS [> FILE]`` in this process, any other command in a shell. A line
    with other syntax, or with no ``xarray-ome-zarr`` command, runs in a shell as it is.
    """
    parts = LIST_OPERATOR.split(command)
    commands, operators = parts[0::2], ["; ", *parts[1::2]]
    ours = [c.startswith("xarray-ome-zarr ") for c in commands]
    for text, here in zip(commands, ours, strict=True):
        try:
            shlex.split(text)  # a quote spanning an operator: not a list this splits
        except ValueError:
            return _run_shell(command, cwd)
        if here and SHELL_SYNTAX.search(STDOUT_TO.sub("", text)):
            return _run_shell(command, cwd)
    if not any(ours):
        return _run_shell(command, cwd)
    status, output = 0, ""
    for operator, text, here in zip(operators, commands, ours, strict=True):
        if (operator.strip() == "&&" and status != 0) or (operator.strip() == "||" and status == 0):
            continue
        if here:
            target = STDOUT_TO.search(text)
            argv = shlex.split(STDOUT_TO.sub("", text))[1:]
            with contextlib.chdir(cwd):
                status, said = _run_cli(argv, None if target is None else cwd / target["file"])
        else:
            status, said = _run_shell(f"(exit {status}); {text}", cwd)
        output += said
    return status, output


def test_code_block_parser():
    page = "a\n```python\nx = 1\n```\n\n    ```console\n    $ echo hi\n    hi\n    ```\n"
    assert code_blocks(page) == [("python", "x = 1\n"), ("console", "$ echo hi\nhi\n")]
    assert _missing_requirement("# requires: surely_not_a_module_name\nimport x\n")
    assert _missing_requirement("# requires: os, sys\n") is None


def test_shell_lists_run_as_the_shell_runs_them(tmp_path):
    missing = "xarray-ome-zarr info missing.ome.zarr"
    status, output = _run_list(f'{missing}; echo "exit status $?"', tmp_path)
    assert status == 0 and output.startswith("xarray-ome-zarr: error: store 'missing.ome.zarr'")
    assert output.endswith("\nexit status 2\n") and output.count("\n") == 2
    assert _run_list(f'{missing} || echo "exit status $?"', tmp_path)[0] == 0
    assert _run_list(f"{missing} && echo ran", tmp_path)[0] == 2
    assert "ran" not in _run_list(f"{missing} && echo ran", tmp_path)[1]
    assert _run_list("xarray-ome-zarr --version > v.txt && test -s v.txt", tmp_path) == (0, "")
    assert _run_list("xarray-ome-zarr --version > v.txt; false", tmp_path)[0] == 1


@pytest.mark.parametrize("page", RUN_PAGES)
def test_page_examples_run(page, tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    text = (DOCS / page).read_text(encoding="utf-8")
    blocks = code_blocks(text)
    if not any(lang in ("python", "console") for lang, _ in blocks):
        pytest.skip(f"{page} has no runnable example")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    import matplotlib

    matplotlib.use("Agg", force=True)
    namespace: dict = {"__name__": "__main__"}
    environ = dict(os.environ)  # the S3 page sets credentials for its commands
    try:
        for i, (lang, body) in enumerate(blocks):
            where = f"{page}, block {i + 1}"
            if lang == "console":
                _run_console(body, where, tmp_path)
            elif lang == "python":
                if _missing_requirement(body):
                    continue
                exec(compile(body, where, "exec"), namespace)  # noqa: S102 - the docs' own code
    finally:
        import matplotlib.pyplot as plt

        plt.close("all")
        os.environ.clear()
        os.environ.update(environ)


# ---- the notebooks -------------------------------------------------------------------------
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs(name, tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    pytest.importorskip("matplotlib")
    source = ROOT / "notebooks" / name
    notebook = nbformat.read(source, as_version=4)
    assert all(
        not cell.get("outputs") and cell.get("execution_count") is None
        for cell in notebook.cells
        if cell.cell_type == "code"
    ), f"{name} is stored with outputs; clear them (jupyter nbconvert --clear-output)"
    shutil.copy(source, tmp_path / name)
    client = nbclient.NotebookClient(
        notebook,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    env = _env()
    env["TMPDIR"] = str(tmp_path)  # the notebooks write into tempfile.mkdtemp()
    client.execute(env=env)  # a cell that hangs fails at the client's timeout
