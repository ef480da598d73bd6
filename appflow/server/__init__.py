"""The HTTP side of `appflow serve`: webhooks, the API, metrics, the catalog repository."""
