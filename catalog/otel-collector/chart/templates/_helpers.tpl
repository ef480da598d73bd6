{{/*
Names and labels shared by every object of the chart. Objects are named after
the release, or "<release>-otel-collector" when the release name does not already say
otel-collector; selector labels never change after install, the others may.
*/}}

{{- define "otel-collector.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "otel-collector.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := include "otel-collector.name" . }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "otel-collector.selectorLabels" -}}
app.kubernetes.io/name: {{ include "otel-collector.name" . | quote }}
app.kubernetes.io/instance: {{ .Release.Name | quote }}
{{- end }}

{{- define "otel-collector.labels" -}}
{{ include "otel-collector.selectorLabels" . }}
app.kubernetes.io/version: {{ include "otel-collector.imageTag" . | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/component: collector
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{- define "otel-collector.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "otel-collector.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The image tag: image.tag, else the chart's appVersion. */}}
{{- define "otel-collector.imageTag" -}}
{{- default .Chart.AppVersion .Values.image.tag }}
{{- end }}

{{- define "otel-collector.image" -}}
{{- printf "%s:%s" .Values.image.repository (include "otel-collector.imageTag" .) }}
{{- end }}

{{/*
The pod-level securityContext: never root, the runtime's default seccomp
profile; only the user and group ids come from values.
*/}}
{{- define "otel-collector.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.podSecurityContext.runAsUser }}
runAsGroup: {{ .Values.podSecurityContext.runAsGroup }}
fsGroup: {{ .Values.podSecurityContext.fsGroup }}
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* The container-level securityContext: no privilege, no capability, read-only root. */}}
{{- define "otel-collector.containerSecurityContext" -}}
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
{{- define "otel-collector.claimName" -}}
{{- default (printf "%s-data" (include "otel-collector.fullname" .)) .Values.persistence.existingClaim }}
{{- end }}

{{/*
The collector configuration, built from values and merged with extraConfig.
Components listen on the pod IP: since 0.104 the collector defaults to
localhost, which the Service could not reach.
*/}}
{{- define "otel-collector.config" -}}
{{- $v := .Values }}
{{- $receivers := dict }}
{{- $otlp := dict }}
{{- if $v.receivers.otlp.grpc.enabled }}
{{- $_ := set $otlp "grpc" (dict "endpoint" (printf "${env:MY_POD_IP}:%v" $v.receivers.otlp.grpc.port)) }}
{{- end }}
{{- if $v.receivers.otlp.http.enabled }}
{{- $_ := set $otlp "http" (dict "endpoint" (printf "${env:MY_POD_IP}:%v" $v.receivers.otlp.http.port)) }}
{{- end }}
{{- if not $otlp }}
{{- fail "otel-collector: enable receivers.otlp.grpc or receivers.otlp.http, or the collector receives nothing" }}
{{- end }}
{{- $_ := set $receivers "otlp" (dict "protocols" $otlp) }}
{{- $exporters := dict }}
{{- $all := list }}
{{- $metricsOnly := list }}
{{- if $v.exporters.debug.enabled }}
{{- $_ := set $exporters "debug" (dict "verbosity" $v.exporters.debug.verbosity) }}
{{- $all = append $all "debug" }}
{{- end }}
{{- if $v.exporters.otlp.enabled }}
{{- if not $v.exporters.otlp.endpoint }}
{{- fail "otel-collector: exporters.otlp.enabled is true but exporters.otlp.endpoint is empty" }}
{{- end }}
{{- $_ := set $exporters "otlp" (dict "endpoint" $v.exporters.otlp.endpoint "tls" (dict "insecure" $v.exporters.otlp.insecure)) }}
{{- $all = append $all "otlp" }}
{{- end }}
{{- if $v.exporters.prometheusRemoteWrite.enabled }}
{{- if not $v.exporters.prometheusRemoteWrite.endpoint }}
{{- fail "otel-collector: exporters.prometheusRemoteWrite.enabled is true but exporters.prometheusRemoteWrite.endpoint is empty" }}
{{- end }}
{{- $_ := set $exporters "prometheusremotewrite" (dict "endpoint" $v.exporters.prometheusRemoteWrite.endpoint "resource_to_telemetry_conversion" (dict "enabled" true)) }}
{{- $metricsOnly = append $metricsOnly "prometheusremotewrite" }}
{{- end }}
{{- if not (or $all $metricsOnly) }}
{{- fail "otel-collector: enable at least one of exporters.debug, exporters.otlp, exporters.prometheusRemoteWrite" }}
{{- end }}
{{- $processors := dict
      "memory_limiter" (dict "check_interval" "1s" "limit_percentage" $v.processors.memoryLimiter.limitPercentage "spike_limit_percentage" $v.processors.memoryLimiter.spikeLimitPercentage)
      "batch" (dict "timeout" $v.processors.batch.timeout "send_batch_size" $v.processors.batch.sendBatchSize) }}
{{- $chain := list "memory_limiter" "batch" }}
{{- $pipelines := dict }}
{{- if $all }}
{{- $_ := set $pipelines "traces" (dict "receivers" (list "otlp") "processors" $chain "exporters" $all) }}
{{- $_ := set $pipelines "logs" (dict "receivers" (list "otlp") "processors" $chain "exporters" $all) }}
{{- end }}
{{- $_ := set $pipelines "metrics" (dict "receivers" (list "otlp") "processors" $chain "exporters" (concat $all $metricsOnly)) }}
{{- $config := dict
      "receivers" $receivers
      "processors" $processors
      "exporters" $exporters
      "extensions" (dict "health_check" (dict "endpoint" "${env:MY_POD_IP}:13133"))
      "service" (dict "extensions" (list "health_check") "pipelines" $pipelines) }}
{{- toYaml (mergeOverwrite $config (deepCopy $v.extraConfig)) }}
{{- end }}
