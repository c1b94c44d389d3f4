"""The registry (issue 12): a duplicate name raises, a class is checked against its kind's methods,
tests can clear what they registered."""

import pytest

from r2d import registry


def test_duplicate_name_raises_and_unregister_clears():
    class A:
        def judge(self, items):
            return []

    class B:
        def judge(self, items):
            return []

    registry.register("judge", "dup-test")(A)
    try:
        registry.register("judge", "dup-test")(A)  # the same class again (a module re-imported): fine
        with pytest.raises(ValueError, match="judge 'dup-test' is already registered"):
            registry.register("judge", "dup-test")(B)
    finally:
        registry.unregister("judge", "dup-test")
    assert "dup-test" not in registry.names("judge")


def test_class_missing_its_kind_method_is_refused():
    class NoLoad:
        pass

    with pytest.raises(TypeError, match="benchmark 'bad-test': .*NoLoad lacks load"):
        registry.register("benchmark", "bad-test")(NoLoad)
    assert "bad-test" not in registry.names("benchmark")


def test_every_builtin_satisfies_its_kind():
    for kind, methods in registry.REQUIRED.items():
        for name in registry.names(kind):
            obj = registry.get(kind, name)
            if isinstance(obj, type):
                assert all(callable(getattr(obj, m, None)) for m in methods), (kind, name)
