{{/*
Names and labels shared by every object of the chart. Objects are named after
the release, or "<release>-nginx-proxy" when the release name does not already say
nginx-proxy; selector labels never change after install, the others may.
*/}}

{{- define "nginx-proxy.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "nginx-proxy.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := include "nginx-proxy.name" . }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "nginx-proxy.selectorLabels" -}}
app.kubernetes.io/name: {{ include "nginx-proxy.name" . | quote }}
app.kubernetes.io/instance: {{ .Release.Name | quote }}
{{- end }}

{{- define "nginx-proxy.labels" -}}
{{ include "nginx-proxy.selectorLabels" . }}
app.kubernetes.io/version: {{ include "nginx-proxy.imageTag" . | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/component: proxy
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{- define "nginx-proxy.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "nginx-proxy.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The image tag: image.tag, else the alpine build of the chart's appVersion. */}}
{{- define "nginx-proxy.imageTag" -}}
{{- default (printf "%s-alpine" .Chart.AppVersion) .Values.image.tag }}
{{- end }}

{{- define "nginx-proxy.image" -}}
{{- printf "%s:%s" .Values.image.repository (include "nginx-proxy.imageTag" .) }}
{{- end }}

{{/*
The pod-level securityContext: never root, the runtime's default seccomp
profile; only the user and group ids come from values.
*/}}
{{- define "nginx-proxy.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.podSecurityContext.runAsUser }}
runAsGroup: {{ .Values.podSecurityContext.runAsGroup }}
fsGroup: {{ .Values.podSecurityContext.fsGroup }}
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* The container-level securityContext: no privilege, no capability, read-only root. */}}
{{- define "nginx-proxy.containerSecurityContext" -}}
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
{{- define "nginx-proxy.claimName" -}}
{{- default (printf "%s-data" (include "nginx-proxy.fullname" .)) .Values.persistence.existingClaim }}
{{- end }}
