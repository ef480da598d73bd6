"""Pods that run to completion on a sandbox cluster, and how they end.

A sandbox node runs no containers: kwok plays the kubelet. Its default stages make
every pod Running and Ready, and end the pods of Jobs with exit code 0; any other
pod would run forever. On a real node a pod whose containers are not restarted
(``restartPolicy: Never`` or ``OnFailure``: a Job's pod, a Helm test pod, a
one-off ``kubectl run --restart=Never``) ends when its process exits, so the
sandbox ends such pods too, right after they started:

- with exit code 0 (phase ``Succeeded``), unless
- the pod carries the annotation ``sandbox.appflow.dev/exit-code: "N"``: then its
  containers exit with N, and N other than 0 makes the phase ``Failed``.

A Job's pod template passes the annotation on to its pods, so a test (or a user
trying hooks on the sandbox) chooses whether a hook Job succeeds or fails; with
``backoffLimit: 0`` a failing Job is Failed after its first pod. Pods with
``restartPolicy: Always`` (those of Deployments, StatefulSets, DaemonSets) are
left to kwok's defaults: they run.

The stage has weight 1 so that kwok picks it over its own ``pod-complete`` stage
(weight 0), which matches a Job's running pods too: among matching stages kwok
chooses only from those with a positive weight.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

EXIT_CODE_ANNOTATION = "sandbox.appflow.dev/exit-code"

_STATUS = """\
{{ $now := Now }}
{{ $annotations := or .metadata.annotations dict }}
{{ $code := or ( index $annotations "@ANNOTATION@" ) "0" }}
containerStatuses:
{{ range .spec.containers }}
- image: {{ .image | Quote }}
  name: {{ .name | Quote }}
  ready: false
  restartCount: 0
  started: false
  state:
    terminated:
      exitCode: {{ $code }}
      finishedAt: {{ $now | Quote }}
      reason: {{ if eq $code "0" }}Completed{{ else }}Error{{ end }}
      startedAt: {{ $now | Quote }}
{{ end }}
phase: {{ if eq $code "0" }}Succeeded{{ else }}Failed{{ end }}
""".replace("@ANNOTATION@", EXIT_CODE_ANNOTATION)


def stages() -> list[dict[str, Any]]:
    """The kwok Stage that ends pods which are not restarted (see the module doc)."""
    return [
        {
            "apiVersion": "kwok.x-k8s.io/v1alpha1",
            "kind": "Stage",
            "metadata": {"name": "pod-run-to-completion"},
            "spec": {
                "resourceRef": {"apiGroup": "v1", "kind": "Pod"},
                "selector": {
                    "matchExpressions": [
                        {"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"},
                        {"key": ".status.phase", "operator": "In", "values": ["Running"]},
                        {
                            "key": ".spec.restartPolicy",
                            "operator": "In",
                            "values": ["Never", "OnFailure"],
                        },
                    ]
                },
                "weight": 1,
                "next": {"statusTemplate": _STATUS},
            },
        }
    ]


def write_stages(path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump_all(stages(), sort_keys=False))
    tmp.replace(path)
