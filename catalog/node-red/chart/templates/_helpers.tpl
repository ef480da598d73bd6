{{/*
Names and labels shared by every object of the chart. Objects are named after
the release, or "<release>-node-red" when the release name does not already say
node-red; selector labels never change after install, the others may.
*/}}

{{- define "node-red.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "node-red.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := include "node-red.name" . }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "node-red.selectorLabels" -}}
app.kubernetes.io/name: {{ include "node-red.name" . | quote }}
app.kubernetes.io/instance: {{ .Release.Name | quote }}
{{- end }}

{{- define "node-red.labels" -}}
{{ include "node-red.selectorLabels" . }}
app.kubernetes.io/version: {{ include "node-red.imageTag" . | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/component: automation
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{- define "node-red.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "node-red.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The image tag: image.tag, else the chart's appVersion. */}}
{{- define "node-red.imageTag" -}}
{{- default .Chart.AppVersion .Values.image.tag }}
{{- end }}

{{- define "node-red.image" -}}
{{- printf "%s:%s" .Values.image.repository (include "node-red.imageTag" .) }}
{{- end }}

{{/*
The pod-level securityContext: never root, the runtime's default seccomp
profile; only the user and group ids come from values.
*/}}
{{- define "node-red.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.podSecurityContext.runAsUser }}
runAsGroup: {{ .Values.podSecurityContext.runAsGroup }}
fsGroup: {{ .Values.podSecurityContext.fsGroup }}
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* The container-level securityContext: no privilege, no capability, read-only root. */}}
{{- define "node-red.containerSecurityContext" -}}
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
{{- define "node-red.claimName" -}}
{{- default (printf "%s-data" (include "node-red.fullname" .)) .Values.persistence.existingClaim }}
{{- end }}

{{/* The data volume: the claim when persistence is on, else an emptyDir that lives as long as the pod. */}}
{{- define "node-red.dataVolume" -}}
- name: data
  {{- if .Values.persistence.enabled }}
  persistentVolumeClaim:
    claimName: {{ include "node-red.claimName" . }}
  {{- else }}
  emptyDir:
    sizeLimit: {{ .Values.persistence.size }}
  {{- end }}
{{- end }}
