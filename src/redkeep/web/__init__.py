"""The HTTP service: a FastAPI app (:func:`redkeep.web.app.create_app`), JSON API under ``/v1``,
health probes, Prometheus metrics and the OpenAPI document generated from the routes' models.
Run it with ``redkeep serve``; add routes as :mod:`redkeep.web.routing` describes."""
