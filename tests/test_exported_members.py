"""The public surface of the ``redkeep`` package matches ``redkeep.__all__`` (httpx style)."""

from __future__ import annotations

import inspect

import redkeep

ALLOWED_DUNDERS = {"__version__"}


def test_all_names_exist_and_are_public() -> None:
    missing = [name for name in redkeep.__all__ if not hasattr(redkeep, name)]
    assert missing == []
    private = [
        name for name in redkeep.__all__ if name.startswith("_") and name not in ALLOWED_DUNDERS
    ]
    assert private == []


def test_all_has_no_duplicates() -> None:
    # Ordering is left to ruff (RUF022 sorts __all__ isort-style).
    assert len(set(redkeep.__all__)) == len(redkeep.__all__)


def test_every_public_class_or_function_of_redkeep_is_exported() -> None:
    unexported = [
        name
        for name, member in vars(redkeep).items()
        if not name.startswith("_")
        and (inspect.isclass(member) or inspect.isfunction(member))
        and (getattr(member, "__module__", "") or "").split(".")[0] == "redkeep"
        and name not in redkeep.__all__
    ]
    assert unexported == []


def test_exported_members_are_defined_in_redkeep_and_documented() -> None:
    for name in redkeep.__all__:
        member = getattr(redkeep, name)
        if inspect.isclass(member) or inspect.isfunction(member):
            assert member.__module__.split(".")[0] == "redkeep", name
            assert inspect.getdoc(member), f"{name} has no docstring"


def test_version_is_a_string() -> None:
    assert isinstance(redkeep.__version__, str) and redkeep.__version__
