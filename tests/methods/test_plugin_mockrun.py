"""An out-of-tree method registered through a REAL entry point (a temporary dist-info on sys.path)
goes through ``ssfbench mock-run`` and the harness's probe; plugins that break the contract are
reported by name, check by check, while every other method keeps working."""

from __future__ import annotations

import json
import warnings

import pytest
from cli_runner import run_main

from ssfbench.api.registry import METHODS, get_method
from ssfbench.pipeline.mockrun import mock_run

PLUGIN = '''
"""A tiny temporal method, as an outsider would write it in their own package (with the import
paths from before the core was grouped into rooms: they must keep working)."""
import torch
from ssfbench.encoders import Encoder  # legacy-path
from ssfbench.losses import triplet_loss  # legacy-path
from ssfbench.method import Method  # legacy-path


class TinyTemporal(Method):
    name = "tinytemporal"
    summary = "plugin: a frame and its neighbour closer than a frame 6 later (one triplet)"

    def build(self):
        self.encoder = Encoder(self.backbone, dim=16, pretrained=self.pretrained)

    @property
    def embed_dim(self):
        return 16

    def embed(self, images):
        return self.encoder(images)

    def frame_offsets(self):
        return [0, 1, 7]

    def training_loss(self, frames):
        b, t = frames.shape[:2]
        z = self.encoder(frames.flatten(0, 1)).view(b, t, -1)
        return triplet_loss(z[:, 0], z[:, 1], z[:, 2])


class LeakyBatchNorm(TinyTemporal):
    """Breaks the contract: embeds in training mode, so BatchNorm statistics move."""
    name = "leaky-bn"

    def embed(self, images):
        self.train()
        return self.encoder(images)


class WrongShape(TinyTemporal):
    """Breaks the contract: an extra trailing dimension."""
    name = "wrong-shape"

    def embed(self, images):
        return self.encoder(images)[:, :, None]


class NotAMethod:
    name = "not-a-method"
    summary = "not a Method subclass"
'''

TINY_RUN = ["--no-init-control", "--backbone", "test_resnet", "--image-size", "32", "--steps", "2", "--batch-size", "4",
            "--workers", "0", "--quiet", "--datasets", "synth-au",
            "--data-option", "synth-vox.identities=5", "--data-option", "synth-vox.videos_per_identity=1",
            "--data-option", "synth-vox.frames=40", "--data-option", "synth-au.subjects=3",
            "--data-option", "synth-au.videos_per_subject=1", "--data-option", "synth-au.frames=40"]


@pytest.fixture
def plugin(install_plugin):
    """A real installed distribution ``tinyssl`` declaring ``ssfbench.methods`` entry points."""
    folder = install_plugin("tinyssl", "tinyssl", PLUGIN, {
        "tinytemporal": "tinyssl:TinyTemporal", "leaky-bn": "tinyssl:LeakyBatchNorm",
        "wrong-shape": "tinyssl:WrongShape", "not-a-method": "tinyssl:NotAMethod",
        "missing-module": "tinyssl_not_installed:Thing"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield folder


def test_plugin_passes_mock_run_and_runs_through_the_probe(plugin, capsys):
    code, out, _ = run_main(["mock-run", "--method", "tinytemporal", "--backbone", "test_resnet"], capsys)
    assert code == 0, out
    lines = out.splitlines()
    assert "from tinyssl" in lines[0]
    checks = [ln for ln in lines if ln.startswith(("PASS", "FAIL", "SKIP"))]
    assert len(checks) == 12 and all(ln.startswith("PASS") for ln in checks), out
    assert any("training (2 steps, loss finite)" in ln for ln in checks)
    assert lines[-1] == "result: all 12 checks passed for method 'tinytemporal'"

    # the same plugin through the harness: pretrain, embed, probe, results and leaderboard
    out_dir = plugin / "out"
    code, out, err = run_main(["run", "--method", "tinytemporal", "--out", str(out_dir), *TINY_RUN], capsys)
    assert code == 0, err
    result = json.loads(next((out_dir / "results" / "runs").glob("tinytemporal-*/synth-au.json")).read_text())
    assert result["method"] == "tinytemporal" and result["embed_dim"] == 16
    assert set(result["scores_per_fold"]) == {"fold1", "fold2", "fold3"}
    assert "tinytemporal" in (out_dir / "results" / "synth-au.csv").read_text()


def test_contract_breakers_are_reported_by_name_and_others_still_work(plugin, capsys):
    code, out, _ = run_main(["mock-run", "--method", "leaky-bn", "--backbone", "test_resnet", "--steps", "1"], capsys)
    assert code == 2
    failed = {ln.split("  ")[1].strip() for ln in out.splitlines() if ln.startswith("FAIL")}
    assert "weights and BatchNorm stats unchanged by embedding" in failed
    assert "BatchNorm running statistics" in out
    assert out.splitlines()[-1].startswith("result: ") and "FAILED for method 'leaky-bn'" in out

    report = mock_run("wrong-shape", backbone="test_resnet", steps=1)
    assert not report.ok
    by_name = {c.name: c for c in report.checks}
    assert by_name["embed shape and dtype"].status == "FAIL"
    assert "expected [4, embed_dim=16]" in by_name["embed shape and dtype"].detail
    assert by_name["embedding finite"].status == "SKIP"  # depends on a valid embedding
    assert by_name["instantiate with defaults"].status == "PASS"

    for name, fragment in (("not-a-method", "breaks the contract"), ("missing-module", "failed to import")):
        report = mock_run(name)
        assert [c.status for c in report.checks][:2] == ["FAIL", "SKIP"]
        assert name in report.checks[0].detail and fragment in report.checks[0].detail
        assert f"FAILED for method {name!r}" in report.lines()[-1]

    # everything else still resolves, and `list methods` marks only the broken ones
    assert get_method("tinytemporal").__module__ == "tinyssl"
    assert get_method("ranking").name == "ranking"
    summaries = {n: s for n, s, _ in METHODS.describe()}
    assert summaries["not-a-method"].startswith("BROKEN") and summaries["missing-module"].startswith("BROKEN")
    assert not summaries["ranking"].startswith("BROKEN") and not summaries["tinytemporal"].startswith("BROKEN")
    report = mock_run("pixels")
    assert report.ok, report.lines()


def test_legacy_import_paths_are_the_new_modules():
    """Every old path of the contract imports as the very module object of its new place."""
    import importlib

    from ssfbench._legacy_paths import ALIASES

    for old, new in ALIASES.items():
        assert importlib.import_module(old) is importlib.import_module(new), old
    import ssfbench
    from ssfbench.api.method import Method as new_method
    assert ssfbench.Method is new_method and "Encoder" in dir(ssfbench)
    with pytest.raises(AttributeError):
        ssfbench.NoSuchName  # noqa: B018


def test_unknown_method_fails_the_first_check_with_suggestions(capsys):
    code, out, _ = run_main(["mock-run", "--method", "rankin"], capsys)
    assert code == 2
    assert out.splitlines()[1].startswith("FAIL") and "did you mean 'ranking'" in out


def test_the_docs_worked_example_passes_mock_run(install_plugin):
    """docs/adding-a-method.md's example package (short imports: ``from ssfbench import Encoder,
    Method, MethodConfig``), installed from the page's own code blocks."""
    import re
    tomllib = pytest.importorskip("tomllib")
    from conftest import REPO

    readme = (REPO / "docs" / "adding-a-method.md").read_text()
    assert "from ssfbench import Encoder, Method, MethodConfig" in readme
    pyproject = tomllib.loads(re.search(r"```toml\n(.*?)```", readme, re.S).group(1))
    code = re.search(r"```python\n(.*?)```", readme, re.S).group(1)
    entry_points = pyproject["project"]["entry-points"]["ssfbench.methods"]
    assert entry_points == {"tcn": "ssfbench_tcn:TCN"}
    install_plugin(pyproject["project"]["name"], "ssfbench_tcn", code, entry_points, version="0.1.0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = mock_run("tcn", backbone="test_resnet", steps=1)
    assert report.ok, "\n".join(report.lines())
    assert "from ssfbench-tcn" in report.header
    assert [c.status for c in report.checks].count("PASS") == 12


def test_mock_run_checks_a_method_with_other_settings():
    from ssfbench.pipeline.mockrun import mock_run

    report = mock_run("random", settings={"bn_stats": "init"})
    assert report.ok
    assert any(c.name == "instantiate with bn_stats=init" and c.status == "PASS" for c in report.checks)
    bad = mock_run("random", settings={"bn_stats": "sometimes"})
    assert not bad.ok and any(c.status == "FAIL" and "bn_stats" in c.detail for c in bad.checks)
