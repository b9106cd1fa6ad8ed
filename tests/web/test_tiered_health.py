"""/health/ready and /metrics of a service whose caches have an L1 (REDKEEP_CACHE_L1_ENABLED)."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
from tests.web.server import TOKEN, ServerThread, redis_settings

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_ready_shows_the_l1_state_of_each_tiered_cache(
    serve: Callable[..., ServerThread], redis_url: str, prefix: str
) -> None:
    server = serve(redis_settings(redis_url, prefix, cache_l1_enabled=True))
    with httpx.Client(base_url=server.url, timeout=10) as client:
        r = client.put("/v1/caches/pages/keys/home", json={"value": "<html>"}, headers=AUTH)
        assert r.status_code == 200, r.text
        deadline = time.monotonic() + 10
        while True:  # the channel comes up in the background; reads bypass L1 until then
            assert client.get("/v1/caches/pages/keys/home", headers=AUTH).status_code == 200
            l1 = client.get("/health/ready").json()["components"]["caches"]["caches"]["pages"]
            if l1["l1"]["state"] == "on" and l1["l1"]["entries"] == 1:
                break
            assert time.monotonic() < deadline, l1
            time.sleep(0.05)
        assert l1["l1"]["invalidation"] == "up" and l1["l1"]["staleness_bound"] == 1.0
        metrics = client.get("/metrics", headers=AUTH).text
        assert 'redkeep_cache_l1_bypassed{cache="pages"} 0.0' in metrics
        assert 'redkeep_cache_l1_entries{cache="pages"} 1.0' in metrics
