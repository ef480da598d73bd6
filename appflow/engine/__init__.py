"""Wiring: syncs, rollouts, dependencies, the daemon and its work queue, catalog installs."""
