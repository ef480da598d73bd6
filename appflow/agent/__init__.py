"""The pull agent: on an edge cluster, pulls its desired state from a hub, applies it with the
engine's sync stages, keeps working offline, and reports back (docs/hub.md §11)."""
