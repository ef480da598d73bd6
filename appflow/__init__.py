"""appflow: a GitOps and Helm app-flow orchestrator for edge Kubernetes fleets."""

__version__ = "0.1.0"
