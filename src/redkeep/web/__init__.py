"""The HTTP service: Starlette app (:func:`redkeep.web.app.create_app`), JSON API under ``/v1``,
health probes, Prometheus metrics and the OpenAPI document. Run it with ``redkeep serve``."""
