{{/*
Names and labels shared by every object of the chart. Objects are named after
the release, or "<release>-inference-server" when the release name does not already say
inference-server; selector labels never change after install, the others may.
*/}}

{{- define "inference-server.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "inference-server.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := include "inference-server.name" . }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "inference-server.selectorLabels" -}}
app.kubernetes.io/name: {{ include "inference-server.name" . | quote }}
app.kubernetes.io/instance: {{ .Release.Name | quote }}
{{- end }}

{{- define "inference-server.labels" -}}
{{ include "inference-server.selectorLabels" . }}
app.kubernetes.io/version: {{ include "inference-server.imageTag" . | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/component: inference
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{- define "inference-server.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "inference-server.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The image tag: image.tag, else the CPU or CUDA server build of the chart's appVersion. */}}
{{- define "inference-server.imageTag" -}}
{{- $flavour := ternary "server-cuda" "server" .Values.gpu.enabled }}
{{- default (printf "%s-%s" $flavour .Chart.AppVersion) .Values.image.tag }}
{{- end }}

{{- define "inference-server.image" -}}
{{- printf "%s:%s" .Values.image.repository (include "inference-server.imageTag" .) }}
{{- end }}

{{/*
The pod-level securityContext: never root, the runtime's default seccomp
profile; only the user and group ids come from values.
*/}}
{{- define "inference-server.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.podSecurityContext.runAsUser }}
runAsGroup: {{ .Values.podSecurityContext.runAsGroup }}
fsGroup: {{ .Values.podSecurityContext.fsGroup }}
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* The container-level securityContext: no privilege, no capability, read-only root. */}}
{{- define "inference-server.containerSecurityContext" -}}
runAsNonRoot: true
allowPrivilegeEscalation: false
privileged: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* The PersistentVolumeClaim the data volume uses, when persistence is on. */}}
{{- define "inference-server.claimName" -}}
{{- default (printf "%s-data" (include "inference-server.fullname" .)) .Values.persistence.existingClaim }}
{{- end }}

{{/* The data volume: the claim when persistence is on, else an emptyDir that lives as long as the pod. */}}
{{- define "inference-server.dataVolume" -}}
- name: data
  {{- if .Values.persistence.enabled }}
  persistentVolumeClaim:
    claimName: {{ include "inference-server.claimName" . }}
  {{- else }}
  emptyDir:
    sizeLimit: {{ .Values.persistence.size }}
  {{- end }}
{{- end }}
