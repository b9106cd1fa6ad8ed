"""The documentation set: the generated configuration reference and the links between pages."""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import Field

from redkeep import docs_gen
from redkeep.config import Settings

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
CONFIG_DOC = DOCS / "configuration.md"
OWN_PAGES = [
    "configuration.md",
    "deployment.md",
    "troubleshooting.md",
    "api.md",
    "migration.md",
    "getting-started.md",
    "http-api.md",
    "sync.md",
    "django.md",
    "worker.md",
    "dashboard.md",
    "queue.md",
    "outbox.md",
    "flows.md",
    "testing.md",
]


def test_configuration_reference_is_up_to_date() -> None:
    assert CONFIG_DOC.read_text(encoding="utf-8") == docs_gen.render_configuration(), (
        "docs/configuration.md is out of date: run `make docs`"
    )


_ENV_NAME = re.compile(r"\bREDKEEP_[A-Z0-9_]*[A-Z0-9]\b")


def test_every_variable_named_in_the_source_is_on_the_configuration_page() -> None:
    """Settings fields, CLI options with ``envvar=``, and any REDKEEP_* name the code reads."""
    named = {
        name
        for path in (ROOT / "src" / "redkeep").rglob("*.py")
        for name in _ENV_NAME.findall(path.read_text(encoding="utf-8"))
    }
    assert {"REDKEEP_WORKER_HTTP_PORT", "REDKEEP_MIGRATE_FROM_TOKEN"} <= named
    page = CONFIG_DOC.read_text(encoding="utf-8")
    missing = sorted(n for n in named if f"### {n}\n" not in page)
    assert missing == [], f"not in docs/configuration.md (run `make docs`): {missing}"


def test_cli_options_read_from_the_environment_are_listed() -> None:
    options = {env: (command, option) for env, command, option, _, _ in docs_gen.cli_env_options()}
    assert options["REDKEEP_WORKER_HTTP_HOST"] == ("redkeep worker", "--http-host")
    assert options["REDKEEP_MIGRATE_TO_TOKEN"] == ("redkeep migrate", "--to-token")


@pytest.mark.parametrize("name", list(Settings.model_fields))
def test_every_setting_is_documented(name: str) -> None:
    info = Settings.model_fields[name]
    assert info.description and len(info.description) > 10, f"Settings.{name} has no description"
    text = CONFIG_DOC.read_text(encoding="utf-8")
    section = text.split(f"### {docs_gen.env_names(name, info)[0]}\n", 1)
    assert len(section) == 2, f"no section for Settings.{name} in docs/configuration.md"
    body = section[1].split("\n### ", 1)[0]
    assert " ".join(info.description.split()) in body
    assert f"`Settings.{name}`" in body


def test_aliases_are_listed() -> None:
    text = CONFIG_DOC.read_text(encoding="utf-8")
    assert "`UPSTASH_REDIS_REST_URL`" in text
    assert "`UPSTASH_REDIS_REST_TOKEN`" in text


def test_a_new_setting_makes_the_reference_stale(tmp_path: Path) -> None:
    class Extended(Settings):
        brand_new_knob: int = Field(
            7, ge=2, description="A setting added after the docs were built."
        )

    rendered = docs_gen.render_configuration(Extended)
    assert "### REDKEEP_BRAND_NEW_KNOB" in rendered
    assert "A setting added after the docs were built." in rendered
    assert "- Allowed: >= 2" in rendered
    assert rendered != CONFIG_DOC.read_text(encoding="utf-8")


def test_check_mode_reports_a_stale_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "configuration.md"
    target.write_text("# stale\n", encoding="utf-8")
    assert docs_gen.main(["--check", str(target)]) == 1
    assert "out of date" in capsys.readouterr().err
    assert docs_gen.main([str(target)]) == 0
    assert docs_gen.main(["--check", str(target)]) == 0
    assert target.read_text(encoding="utf-8") == docs_gen.render_configuration()


def test_type_names_are_readable() -> None:
    fields = Settings.model_fields
    assert docs_gen.type_name(fields["redis_url"].annotation) == "str, secret, optional"
    assert docs_gen.type_name(fields["cache_default_ttl"].annotation) == "float, optional"
    assert docs_gen.type_name(fields["startup"].annotation) == "one of: `strict`, `degraded`"


_LINK = re.compile(r"\]\(([^)#\s]+)(#[^)\s]*)?\)")


@pytest.mark.parametrize("page", OWN_PAGES)
def test_relative_links_resolve(page: str) -> None:
    path = DOCS / page
    assert path.exists(), f"docs/{page} is missing"
    for target, _anchor in _LINK.findall(path.read_text(encoding="utf-8")):
        if "://" in target or target.startswith("mailto:"):
            continue
        assert (path.parent / target).resolve().exists(), f"docs/{page} links to missing {target}"


_DOTTED = re.compile(r"`(redkeep(?:\.[A-Za-z_][A-Za-z0-9_]*)+)`")


def test_api_reference_names_exist() -> None:
    """Every dotted ``redkeep.x.y`` name in docs/api.md imports (the reference stays accurate)."""
    names = set(_DOTTED.findall((DOCS / "api.md").read_text(encoding="utf-8")))
    assert names, "docs/api.md mentions no redkeep names"
    missing = []
    for dotted in sorted(names):
        parts = dotted.split(".")
        for cut in range(len(parts), 0, -1):
            try:
                obj: object = importlib.import_module(".".join(parts[:cut]))
            except ImportError:
                continue
            try:
                for attr in parts[cut:]:
                    obj = getattr(obj, attr)
            except AttributeError:
                missing.append(dotted)
            break
        else:
            missing.append(dotted)
    assert not missing, f"docs/api.md names that do not exist: {missing}"


def _documented_acl_rule() -> list[str]:
    text = (DOCS / "deployment.md").read_text(encoding="utf-8")
    line = next(ln for ln in text.splitlines() if ln.startswith("ACL SETUSER redkeep "))
    return line.split()[1:]  # drop "ACL"


async def test_documented_acl_user_can_run_redkeep(redis_server_factory: Any) -> None:
    """The ACL rule in docs/deployment.md is enough for startup, caches, queues and workers,
    and keeps the user out of other keys and FLUSHALL."""
    import asyncio

    import redis as sync_redis

    from redkeep.services import create_services

    server = redis_server_factory(maxmemory_policy="noeviction")
    args = [a.replace("CHANGE-ME", "acl-test-pw") for a in _documented_acl_rule()]
    with sync_redis.Redis.from_url(server.url_no_auth) as admin:
        admin.execute_command("ACL", *args)
        admin.set("other-app:secret", "x")
    url = f"redis://redkeep:acl-test-pw@127.0.0.1:{server.port}/0"
    settings = Settings(redis_url=url, startup="strict", connect_max_wait=2.0)
    done = asyncio.Event()

    async def handler(job: Any) -> str:
        done.set()
        return "ok"

    async with create_services(settings) as services:
        assert services.degraded_reason is None and services.eviction_policy == "noeviction"
        cache = services.cache("acl")
        await cache.set("k", {"v": 1}, ttl=30)
        assert await cache.get("k") == {"v": 1}
        assert await cache.incr("n") == 1
        assert await cache.clear() == 2
        queue = services.queue("acl-q")
        job = await queue.enqueue("h", {"x": 1})
        worker = services.worker({"h": handler}, queues=["acl-q"], handle_signals=False)
        task = asyncio.create_task(worker.run())
        await asyncio.wait_for(done.wait(), 10)
        for _ in range(100):
            got = await queue.get_job(job.id)
            if got is not None and got.status == "completed":
                break
            await asyncio.sleep(0.05)
        worker.stop()
        await asyncio.wait_for(task, 15)
        assert got is not None and got.status == "completed" and got.result == "ok"
    with sync_redis.Redis.from_url(url) as limited:
        with pytest.raises(sync_redis.exceptions.NoPermissionError):
            limited.get("other-app:secret")
        with pytest.raises(sync_redis.exceptions.NoPermissionError):
            limited.flushall()


def test_license_file_matches_pyproject() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["license"] == "MIT"
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License\n")
    assert "Permission is hereby granted, free of charge" in text
