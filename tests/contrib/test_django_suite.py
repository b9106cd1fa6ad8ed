"""Django's own cache test suite (``BaseCacheTests`` from ``tests/cache/tests.py`` of the sdist
of the installed Django version) run against :class:`redkeep.contrib.django.RedkeepCache`.

Every excluded test is listed in :data:`EXCLUDED` with its reason, and docs/django.md lists the
same tests (checked below).
"""

from __future__ import annotations

import re
import unittest
from collections.abc import Iterator
from pathlib import Path

import django
import pytest
from django.test import SimpleTestCase, override_settings

from tests.support.django_suite import backend_params, remove_keys, setup_django

URL = setup_django()

from cache.tests import BaseCacheTests, caches_setting_for_tests  # noqa: E402

NO_PICKLE = "redkeep never pickles: values are exact JSON"
EXCLUDED = {
    "test_data_types": f"{NO_PICKLE}; a function and a class are not data",
    "test_cache_read_for_model_instance": f"{NO_PICKLE}; a model instance is not data",
    "test_cache_write_for_model_instance_with_deferred": f"{NO_PICKLE}; a queryset is not data",
    "test_cache_read_for_model_instance_with_deferred": f"{NO_PICKLE}; a queryset is not data",
    "test_add_fail_on_pickleerror": f"{NO_PICKLE}; expects pickle.PickleError (redkeep raises "
    "SerializationError for a value it cannot encode)",
    "test_set_fail_on_pickleerror": f"{NO_PICKLE}; expects pickle.PickleError (redkeep raises "
    "SerializationError for a value it cannot encode)",
    "test_cull": "culling (MAX_ENTRIES) is a feature of Django's local backends; Redis evicts by "
    "its own policy (the test skips itself: no 'cull' cache, as in Django's Redis tests)",
    "test_zero_cull": "culling, as test_cull",
    "test_cull_delete_when_store_empty": "culling, as test_cull",
}


@override_settings(
    CACHES=caches_setting_for_tests(base=backend_params(URL), exclude={"cull", "zero_cull"})
)
class RedkeepCacheTests(BaseCacheTests, SimpleTestCase):  # type: ignore[misc]
    """Django's BaseCacheTests on RedkeepCache."""


for _name, _reason in EXCLUDED.items():
    setattr(
        RedkeepCacheTests,
        _name,
        unittest.skip(f"excluded: {_reason}")(getattr(BaseCacheTests, _name)),
    )


@pytest.fixture(autouse=True, scope="module")
def _cleanup() -> Iterator[None]:
    yield
    remove_keys(URL)


def suite_tests() -> list[str]:
    return sorted(n for n in dir(BaseCacheTests) if n.startswith("test_"))


def test_every_excluded_test_exists_in_the_suite() -> None:
    assert set(EXCLUDED) <= set(suite_tests())
    assert len(suite_tests()) >= 50  # the whole BaseCacheTests, not a subset


def test_docs_list_exactly_the_excluded_tests() -> None:
    text = (Path(__file__).parents[2] / "docs" / "django.md").read_text(encoding="utf-8")
    section = text.split("## Django's cache test suite", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^\| `(test_\w+)` \|", section, flags=re.MULTILINE))
    assert listed == set(EXCLUDED)
    total, excluded = len(suite_tests()), len(EXCLUDED)
    major, minor = django.VERSION[:2]
    assert f"Django {major}.{minor} (last run with " in section  # the counts are this series'
    assert f"{total - excluded} of {total} pass, {excluded} excluded" in section
