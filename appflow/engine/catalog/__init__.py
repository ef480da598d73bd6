"""The marketplace catalog on top of the engine: entries, installs, live updates, publishing.

    entries.py    find an entry, resolve its version, fetch its chart
    values.py     gather install values and check them on every target
    source.py     the catalog's source resolver (registered with the engine on import)
    installs.py   install, upgrade, uninstall; what is installed, what could be
    live.py       follow new charts for ``auto`` installs (folder watch, repository poll)
    publisher.py  the catalog served as a Helm repository

Only ``source`` is imported with the package: the rest pulls in the catalog's adapters
(httpx, jsonschema, helm) and is imported where it is used.
"""

from appflow.engine.catalog import source as source

__all__ = ["source"]
