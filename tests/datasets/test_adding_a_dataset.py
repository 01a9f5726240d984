"""docs/adding-a-dataset.md's worked adapter (ToyAU), built from the page's own code blocks and
installed through a real ``ssfbench.datasets`` entry point: it is found by the registry, has the
declared capabilities, passes ``datasets verify`` and gives the harness face crops and folds."""

from __future__ import annotations

import re
import sys
import textwrap
import warnings

import numpy as np
import pytest
from cli_runner import run_main
from conftest import REPO
from PIL import Image

from ssfbench.api.dataset import CountsFaces, Inspectable, Preparable
from ssfbench.api.registry import DATASETS, get_dataset


@pytest.fixture
def toyau(tmp_path, monkeypatch):
    """The doc's package installed (dist-info with its entry point) and a 6-subject copy of ToyAU."""
    tomllib = pytest.importorskip("tomllib")
    page = (REPO / "docs" / "adding-a-dataset.md").read_text()
    code = re.search(r"```python\n(.*?)```", page, re.S).group(1)
    pyproject = tomllib.loads(re.search(r"```toml\n(.*?)```", page, re.S).group(1))
    entry_points = pyproject["project"]["entry-points"]["ssfbench.datasets"]
    assert entry_points == {"toyau": "toyau:ToyAU"}
    site = tmp_path / "site"
    (site / "toyau").mkdir(parents=True)
    (site / "toyau" / "__init__.py").write_text(textwrap.dedent(code))
    info = site / "ssfbench_toyau-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ssfbench-toyau\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text("[ssfbench.datasets]\ntoyau = toyau:ToyAU\n")
    monkeypatch.syspath_prepend(str(site))
    DATASETS.reset()

    root = tmp_path / "ToyAU"
    (root / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    lines = ["subject,image,x,y,w,h,AU1,AU2,AU4"]
    for s in range(6):
        for i in range(2):
            name = f"s{s}_{i}.png"
            Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(root / "images" / name)
            lines.append(f"S{s},{name},8,4,30,30,{(s + i) % 2},{s % 2},{9 if i else 0}")
    lines.append("S5,missing.png,0,0,10,10,1,0,0")  # listed, not there: skipped and counted
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    yield root
    DATASETS.reset()
    sys.modules.pop("toyau", None)


def test_the_docs_toy_adapter_is_found_verified_and_read(toyau, capsys):
    cls = get_dataset("toyau")
    assert cls.__module__ == "toyau"
    assert isinstance(cls, Inspectable) and isinstance(cls, Preparable)

    code, out, err = run_main(["datasets", "verify", "toyau", "--root", str(toyau)], capsys)
    assert code == 0, out + err
    assert "image missing" in out

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the skipped row is warned about
        ds = cls.open(toyau, image_size=32)
        again = cls.open(toyau, image_size=32)
    assert len(ds) == 12 and ds.targets.shape == (12, 3)
    assert (ds.targets[:, 2] == -1).sum() == 6  # code 9: unknown
    crop = ds.read_image(0)
    assert crop.shape == (32, 32, 3) and crop.dtype == np.uint8
    assert isinstance(ds, CountsFaces) and dict(ds.faces_found) == {"box": 1}
    (fold,) = ds.folds()
    assert len(fold.test) == 4 and len(fold.train) == 8 and not set(fold.train) & set(fold.test)
    assert ds.fingerprint() == again.fingerprint()
