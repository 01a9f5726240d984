"""Every module of the package imports on its own, as the first ssfbench module of a fresh
interpreter: no import cycle (``python -c "import ssfbench.cli.datasets"`` once failed with
"partially initialized module") and no module that only works after another one was imported.

A fresh interpreter per module costs a torch import each (~4-10 s on a 2-core machine, over two
minutes for the whole package), so a few worker interpreters share the modules instead, and
before each module a worker forgets every ``ssfbench`` module it has loaded: the module under test
and everything of ssfbench it pulls in are imported from scratch, in the order that module asks
for them, exactly as in a fresh interpreter; only third-party libraries (torch, timm, ...) stay
loaded. ``__main__`` modules are left out (importing them runs the command line).
"""

from __future__ import annotations

import importlib.util
import json
import os
import pkgutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

#: the packages whose modules are checked: the harness and the plugins installed under it
ROOTS = ("ssfbench", "ssfbench.methods", "ssfbench.datasets")

#: run by each worker interpreter with module names as arguments; prints one JSON line
#: {module: None when it imported, else the error's last line}
WORKER = r"""
import importlib, json, sys, traceback

results = {}
for name in sys.argv[1:]:
    for loaded in [m for m in sys.modules if m == "ssfbench" or m.startswith("ssfbench.")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception as exc:
        results[name] = traceback.format_exception_only(type(exc), exc)[-1].strip()
    else:
        results[name] = None
print("RESULTS " + json.dumps(results))
"""


def package_modules() -> list[str]:
    """Every module and package under :data:`ROOTS`, found on disk (nothing of them imported but
    ``ssfbench/__init__``), without ``__main__`` modules."""
    names: list[str] = []

    def walk(package: str, paths: list[str]) -> None:
        names.append(package)
        for info in pkgutil.iter_modules(paths):
            name = f"{package}.{info.name}"
            if info.ispkg:
                walk(name, [str(Path(p) / info.name) for p in paths if (Path(p) / info.name).is_dir()])
            elif info.name != "__main__":
                names.append(name)

    for root in ROOTS:
        spec = importlib.util.find_spec(root)
        assert spec is not None and spec.submodule_search_locations, f"{root} is not an installed package"
        walk(root, list(spec.submodule_search_locations))
    return list(dict.fromkeys(names))


def import_each(modules: list[str], workers: int) -> dict[str, str | None]:
    """Import each of ``modules`` first in its own clean slate (see the module docstring), spread
    round-robin over ``workers`` interpreters run in parallel; {module: None or the error}."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}

    def run(chunk: list[str]) -> dict[str, str | None]:
        # cwd outside the checkout: `python -c` puts the cwd first on sys.path, and the source folder
        # ssfbench/ (without methods/ and datasets/, which the install maps in) would shadow the
        # installed package, as it did under tox's non-editable install
        proc = subprocess.run([sys.executable, "-c", WORKER, *chunk], capture_output=True, text=True,
                              env=env, timeout=600, cwd=tempfile.gettempdir())
        lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULTS ")]
        assert proc.returncode == 0 and lines, f"worker failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}"
        return json.loads(lines[-1][len("RESULTS "):])

    chunks = [modules[i::workers] for i in range(workers)]
    with ThreadPoolExecutor(workers) as pool:
        return {name: error for result in pool.map(run, chunks) for name, error in result.items()}


def test_the_walk_finds_the_whole_package():
    modules = package_modules()
    for expected in ("ssfbench.cli", "ssfbench.cli.options", "ssfbench.cli.datasets", "ssfbench.pipeline.runner",
                     "ssfbench.methods.ranking", "ssfbench.datasets.bp4d", "ssfbench.datasets.synthetic"):
        assert expected in modules
    assert not any(name.endswith("__main__") for name in modules)


def test_every_module_imports_first_without_a_cycle():
    modules = package_modules()
    results = import_each(modules, workers=max(1, min(2, os.cpu_count() or 1)))
    assert set(results) == set(modules)
    failed = {name: error for name, error in results.items() if error is not None}
    assert not failed, "modules that fail when imported first:\n" + "\n".join(
        f"  {name}: {error}" for name, error in sorted(failed.items()))
