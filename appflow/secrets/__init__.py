"""Secrets: age identities held for clusters and groups, and the sops binary that decrypts with them.

``age`` reads, makes and checks age X25519 identities; ``keys`` keeps them per
cluster or group with the cluster credentials' protections; ``sops`` drives the
sops binary in memory (ciphertext in on stdin, plaintext out on stdout, the
identities in its environment); ``decrypt`` finds the SOPS files of an app
folder and decrypts them, the one step the engine (push mode) and the agent on
an edge cluster (pull mode) share. Nothing here writes a decrypted byte to disk.
"""
