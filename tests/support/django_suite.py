"""Django for the tests of ``redkeep.contrib.django``: one settings configuration per process,
and Django's own cache test suite from the sdist of the installed Django version.

The sdist is downloaded with pip (``pip download --no-binary :all: --no-deps django==X``) into
``.tools/django-sdist/`` on first use; its ``tests/cache/`` package is extracted to
``.tools/django-tests/X/cache/`` and put on ``sys.path`` as the ``cache`` app, as Django's own
``runtests.py`` does. Nothing from it is copied into the repository.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import uuid
from pathlib import Path

import django
from django.conf import settings

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / ".tools"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"

#: Unique per test process: every Django cache of the tests keeps its keys under it.
KEY_PREFIX = f"rkt:{uuid.uuid4().hex[:12]}"


def django_cache_suite() -> Path:
    """The directory holding Django's ``cache`` test package for the installed version.

    Test processes running side by side (``pytest -n``) take turns: one downloads and extracts,
    the others find it done."""
    version = django.get_version()
    root = TOOLS / "django-tests" / version
    if (root / "cache" / "tests.py").exists():
        return root
    TOOLS.mkdir(parents=True, exist_ok=True)
    with (TOOLS / "django-tests.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (root / "cache" / "tests.py").exists():
            _extract(version, root)
    return root


def _extract(version: str, root: Path) -> None:
    sdists = TOOLS / "django-sdist"
    sdists.mkdir(parents=True, exist_ok=True)
    archive = next(sdists.glob(f"[dD]jango-{version}.tar.gz"), None)
    if archive is None:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-binary", ":all:", "--no-deps",
             "--dest", str(sdists), f"django=={version}"],
            check=True,
        )  # fmt: skip
        archive = next(sdists.glob(f"[dD]jango-{version}.tar.gz"))
    staging = Path(tempfile.mkdtemp(dir=TOOLS))
    try:
        with tarfile.open(archive) as tar:
            members = [m for m in tar.getmembers() if "/tests/cache/" in m.name]
            tar.extractall(staging, members=members, filter="data")
        root.mkdir(parents=True, exist_ok=True)
        extracted = next(staging.glob("*/tests/cache"))
        extracted.rename(root / "cache")  # atomic: a half extraction is never seen as done
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _redis_url() -> str:
    url = os.environ.get("REDKEEP_TEST_REDIS_URL", DEFAULT_REDIS_URL)
    import redis

    try:
        with redis.Redis.from_url(url, socket_connect_timeout=1) as r:
            r.ping()
        return url
    except Exception:  # no shared server: a private one for this process (stopped at exit)
        from tests.support.redis_server import RedisServer

        server = RedisServer()
        _keep.append(server)
        return server.url


_keep: list[object] = []


def setup_django() -> str:
    """Configure Django once for this process (SQLite file database, the ``cache`` test app,
    a RedkeepCache as default cache); returns the Redis URL the caches use."""
    if settings.configured:
        return str(settings.CACHES["default"]["LOCATION"])
    sys.path.insert(0, str(django_cache_suite()))
    url = _redis_url()
    database = Path(tempfile.mkdtemp(prefix="redkeep-django-")) / "db.sqlite3"
    settings.configure(
        SECRET_KEY="redkeep-tests-only",
        USE_TZ=True,
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(database)}},
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "cache"],
        CACHES={"default": backend_params(url)},
        MIDDLEWARE=[],
    )
    django.setup()
    from django.test.utils import setup_test_environment

    setup_test_environment()  # as Django's test runner does (ALLOWED_HOSTS gets "testserver")
    return url


def backend_params(url: str, **options: object) -> dict[str, object]:
    """CACHES entry of a RedkeepCache on ``url`` under this process's key prefix."""
    return {
        "BACKEND": "redkeep.contrib.django.RedkeepCache",
        "LOCATION": url,
        "OPTIONS": {"key_prefix": KEY_PREFIX, "command_timeout": 2.0, **options},
    }


def remove_keys(url: str) -> None:
    """Delete every key this process's Django caches wrote."""
    import redis

    with redis.Redis.from_url(url, socket_connect_timeout=1) as r:
        keys = list(r.scan_iter(match=f"*{KEY_PREFIX}:*", count=1000))
        for i in range(0, len(keys), 500):
            r.unlink(*keys[i : i + 500])
