"""Hub mode: appflow's state as custom resources in a management cluster (docs/hub.md).

What runs against the hub as a whole: its CustomResourceDefinitions, its install and uninstall,
and (with the engine's sync stages) its controller. Sits above the engine and the adapters.
"""
