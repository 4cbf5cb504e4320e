"""The generic Registry: registering, reading, one-line errors with suggestions, lazy entry points.

Every test uses its own Registry (and its own entry-point group), so the global registries of
``rlplug.plugins`` stay untouched.
"""

from __future__ import annotations

import sys
import uuid

import pytest

from rlplug.contracts import Network, check_subclass
from rlplug.errors import PluginError, UserError
from rlplug.registry import Registry


class Alpha:
    pass


class Beta:
    pass


def fresh_group() -> str:
    return f"rlplug_test.{uuid.uuid4().hex[:8]}"


def test_register_then_get_returns_the_object_and_names_are_sorted() -> None:
    registry: Registry[type] = Registry("thing")
    registry.register("zeta", Beta)
    registry.register("alpha", Alpha)
    assert registry.get("alpha") is Alpha
    assert registry.get("zeta") is Beta
    assert registry.names() == ["alpha", "zeta"]
    assert "alpha" in registry and "gamma" not in registry


def test_register_as_decorator_registers_and_returns_the_object() -> None:
    registry: Registry[type] = Registry("thing")

    @registry.register("decorated", version="2.0")
    class Decorated:
        pass

    assert Decorated.__name__ == "Decorated"  # the decorator gives the class back
    assert registry.get("decorated") is Decorated
    assert registry.entries()[0].version == "2.0"


def test_unknown_name_is_one_line_naming_the_kind_the_sorted_choices_and_a_close_match() -> None:
    registry: Registry[type] = Registry("algo")
    for name in ("ppo", "a3c", "dqn"):
        registry.register(name, Alpha)
    with pytest.raises(PluginError) as info:
        registry.get("a3cc")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("unknown algo 'a3cc'")
    assert "installed: a3c, dqn, ppo." in message
    assert message.endswith("Did you mean 'a3c'?")
    assert isinstance(info.value, UserError)  # so the CLI prints it as one line, exit code 2


def test_unknown_name_without_a_close_match_makes_no_suggestion() -> None:
    registry: Registry[type] = Registry("network")
    registry.register("lstm", Alpha)
    with pytest.raises(PluginError) as info:
        registry.get("transformer")
    assert "Did you mean" not in str(info.value)
    with pytest.raises(PluginError, match="none installed"):
        Registry("executor").get("thread")


def test_registering_two_objects_under_one_name_is_an_error() -> None:
    registry: Registry[type] = Registry("network")
    registry.register("mlp", Alpha)
    registry.register("mlp", Alpha)  # the same registration again is harmless
    with pytest.raises(PluginError, match="'mlp' is registered twice"):
        registry.register("mlp", Beta)
    assert registry.get("mlp") is Alpha


def _one_class_plugin(make_distribution, monkeypatch, dist_name: str, version: str, name: str,
                      class_name: str) -> tuple[str, str]:
    """An installed distribution whose entry point ``name`` (in a fresh group) is an empty class
    in a fresh module; returns the group and the module name."""
    group = fresh_group()
    module = f"{dist_name.replace('-', '_')}_{uuid.uuid4().hex[:8]}"
    dist = make_distribution(dist_name, version, {group: {name: f"{module}:{class_name}"}},
                             {f"{module}.py": f"class {class_name}:\n    pass\n"})
    monkeypatch.syspath_prepend(str(dist.root))
    return group, module


def test_entry_points_are_not_imported_until_get(make_distribution, monkeypatch) -> None:
    group, module = _one_class_plugin(make_distribution, monkeypatch, "lazy-plugin", "0.3",
                                      "lazy", "Thing")
    registry: Registry[type] = Registry("thing", group)
    assert registry.names() == ["lazy"]
    assert "lazy" in registry
    entry = registry.entries()[0]
    assert (entry.distribution, entry.version, entry.target) == ("lazy-plugin", "0.3", f"{module}:Thing")
    assert module not in sys.modules, "listing names must not import the plugin"
    thing = registry.get("lazy")
    assert module in sys.modules
    assert thing is sys.modules[module].Thing


def test_an_entry_point_failing_the_contract_check_cannot_be_used(make_distribution, monkeypatch) -> None:
    group, module = _one_class_plugin(make_distribution, monkeypatch, "odd-plugin", "1.0",
                                      "odd", "NotANetwork")
    registry: Registry[type] = Registry("network", group, check_subclass(Network))
    with pytest.raises(PluginError) as info:
        registry.get("odd")
    message = str(info.value)
    assert "\n" not in message
    assert "network 'odd' from odd-plugin 1.0 cannot be used: TypeError" in message
    assert "not a subclass of rlplug.contracts.Network" in message
