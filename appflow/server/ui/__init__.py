"""The web dashboard served under /ui: server-rendered pages over the API's FleetService,
a little JavaScript of our own for live updates and in-browser form checks, no CDN."""

from appflow.server.ui.pages import mount_dashboard

__all__ = ["mount_dashboard"]
