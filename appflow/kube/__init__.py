"""The only package that talks to Kubernetes API servers (through the official client)."""
