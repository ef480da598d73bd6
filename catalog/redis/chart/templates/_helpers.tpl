{{/*
Names and labels shared by every object of the chart. Objects are named after
the release, or "<release>-redis" when the release name does not already say
redis; selector labels never change after install, the others may.
*/}}

{{- define "redis.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "redis.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := include "redis.name" . }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "redis.selectorLabels" -}}
app.kubernetes.io/name: {{ include "redis.name" . | quote }}
app.kubernetes.io/instance: {{ .Release.Name | quote }}
{{- end }}

{{- define "redis.labels" -}}
{{ include "redis.selectorLabels" . }}
app.kubernetes.io/version: {{ include "redis.imageTag" . | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/component: database
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{- define "redis.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "redis.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The image tag: image.tag, else the alpine build of the chart's appVersion. */}}
{{- define "redis.imageTag" -}}
{{- default (printf "%s-alpine" .Chart.AppVersion) .Values.image.tag }}
{{- end }}

{{- define "redis.image" -}}
{{- printf "%s:%s" .Values.image.repository (include "redis.imageTag" .) }}
{{- end }}

{{/*
The pod-level securityContext: never root, the runtime's default seccomp
profile; only the user and group ids come from values.
*/}}
{{- define "redis.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.podSecurityContext.runAsUser }}
runAsGroup: {{ .Values.podSecurityContext.runAsGroup }}
fsGroup: {{ .Values.podSecurityContext.fsGroup }}
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* The container-level securityContext: no privilege, no capability, read-only root. */}}
{{- define "redis.containerSecurityContext" -}}
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
{{- define "redis.claimName" -}}
{{- default (printf "%s-data" (include "redis.fullname" .)) .Values.persistence.existingClaim }}
{{- end }}

{{/* The data volume: the claim when persistence is on, else an emptyDir that lives as long as the pod. */}}
{{- define "redis.dataVolume" -}}
- name: data
  {{- if .Values.persistence.enabled }}
  persistentVolumeClaim:
    claimName: {{ include "redis.claimName" . }}
  {{- else }}
  emptyDir:
    sizeLimit: {{ .Values.persistence.size }}
  {{- end }}
{{- end }}
