"""The sync stages: one AppFlow's desired state onto one Cluster, with no store.

Each stage takes a ``KubeCluster`` and plain typed inputs and returns typed results,
so the push engine, the hub's controller and the pull agent run the same code:

    prepared = await prepare(kube, desired, previous_inventory=..., fingerprints=..., options=...)
    result = await execute(kube, prepared, options=...)     # apply -> prune -> inventory -> health

``prepare`` only reads (live state, server-side dry runs); ``execute`` writes. A fleet
sync prepares every target before it executes any. Helm release mode (``release``) is
the other way to put an app on a cluster. Nothing here reads or writes appflow's
store: what a stage needs from it comes in as arguments, what it learned goes back in
its result.
"""
