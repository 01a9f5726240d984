"""Registry: built-ins, real entry-point plugins, clashes, broken plugins, suggestions."""

import warnings

import pytest

from ssfbench.api.registry import METHODS, PluginWarning, get_method, list_datasets, list_methods
from ssfbench.errors import UserError

PLUGIN = '''
import torch
from ssfbench.api.method import Method
from ssfbench.nn.encoders import Encoder

class TinyMethod(Method):
    name = "tiny"
    summary = "a plugin method for tests"
    def build(self):
        self.encoder = Encoder(self.backbone, dim=8)
    @property
    def embed_dim(self):
        return 8
    def embed(self, images):
        return self.encoder(images)

class ClashMethod(TinyMethod):
    name = "ranking"

class NotAMethod:
    name = "broken-contract"
    summary = "not a Method subclass"
'''


@pytest.fixture
def plugin_dist(install_plugin):
    """A real installed distribution (dist-info on sys.path) declaring ssfbench.methods entry points."""
    install_plugin("tinyplugin", "tinyplugin", PLUGIN, {
        "tiny": "tinyplugin:TinyMethod", "ranking": "tinyplugin:ClashMethod",
        "broken-import": "tinyplugin_missing_module:Thing", "broken-contract": "tinyplugin:NotAMethod"})


def test_builtins_are_registered():
    assert {"ranking", "random"} <= set(list_methods())
    assert {"synth-vox", "synth-au", "synth-expr"} <= set(list_datasets())
    assert get_method("ranking").name == "ranking"


def test_unknown_name_suggests_nearest():
    with pytest.raises(UserError, match="did you mean 'ranking'"):
        get_method("rankin")


def test_plugin_is_discovered_through_its_entry_point(plugin_dist):
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        cls = get_method("tiny")
    assert cls.__module__ == "tinyplugin"
    origins: dict[str, str] = {}
    for name, _, origin in METHODS.describe():
        origins.setdefault(name, origin)  # the one in use comes first
    assert origins["tiny"] == "tinyplugin" and origins["ranking"] == "built-in"


def test_builtin_wins_a_clash_and_the_clash_is_reported(plugin_dist):
    with pytest.warns(PluginWarning, match="clashes"):
        list_methods()
    assert get_method("ranking").__module__ == "ssfbench.methods.ranking"
    assert any("clashes" in p for p in METHODS.problems.values())
    shown = [row for row in METHODS.describe() if row[0] == "ranking"]
    assert shown[0][2] == "built-in" and any(s.startswith("NOT USED") and "clashes" in s for _, s, _ in shown[1:])


def test_broken_plugins_are_reported_by_name_and_others_still_work(plugin_dist):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(UserError, match="'broken-import'.*failed to import"):
            get_method("broken-import")
        with pytest.raises(UserError, match="'broken-contract'.*breaks the contract"):
            get_method("broken-contract")
        assert get_method("tiny").name == "tiny"
        assert get_method("random").name == "random"
        described = dict((n, s) for n, s, _ in METHODS.describe())
    assert described["broken-import"].startswith("BROKEN")
    assert not described["random"].startswith("BROKEN")
