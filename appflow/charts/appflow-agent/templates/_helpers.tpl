{{/* Labels on every object of the release. */}}
{{- define "appflow-agent.labels" -}}
app.kubernetes.io/name: appflow-agent
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "appflow-agent.selector" -}}
app.kubernetes.io/name: appflow-agent
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "appflow-agent.image" -}}
{{ printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end -}}
