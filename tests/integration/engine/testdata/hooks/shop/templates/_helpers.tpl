{{- define "shop.hookPod" -}}
metadata:
  annotations:
    sandbox.appflow.dev/exit-code: {{ .code | quote }}
spec:
  restartPolicy: Never
  containers:
    - name: {{ .name }}
      image: "registry.example/shop-{{ .name }}:1.4"
{{- end -}}
