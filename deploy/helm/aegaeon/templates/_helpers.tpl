{{/* Common labels; "component" is serve, controller or worker. */}}
{{- define "aegaeon.labels" -}}
app.kubernetes.io/name: aegaeon
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "aegaeon.selector" -}}
app.kubernetes.io/name: aegaeon
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "aegaeon.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/* Pod annotations: the config checksum rolls pods on config changes; scrape hints. */}}
{{- define "aegaeon.podAnnotations" -}}
checksum/config: {{ toYaml .Values.config | sha256sum }}
{{- if .Values.metrics.podAnnotations }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .Values.config.http.port | quote }}
prometheus.io/path: /metrics
{{- end }}
{{- end }}

{{/* /health probes; the startup probe allows minutes for loading (or synthesizing) models. */}}
{{- define "aegaeon.probes" -}}
startupProbe:
  httpGet:
    path: /health
    port: http
  periodSeconds: 5
  failureThreshold: 60
readinessProbe:
  httpGet:
    path: /health
    port: http
  periodSeconds: 10
  timeoutSeconds: 2
livenessProbe:
  httpGet:
    path: /health
    port: http
  periodSeconds: 20
  timeoutSeconds: 5
  failureThreshold: 3
{{- end }}

{{- define "aegaeon.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "aegaeon.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop:
    - ALL
{{- end }}

{{/* Config, data and (optionally) model volumes, with their mounts. */}}
{{- define "aegaeon.volumeMounts" -}}
- name: config
  mountPath: /etc/aegaeon
  readOnly: true
- name: data
  mountPath: /var/lib/aegaeon
{{- if .Values.models.existingClaim }}
- name: models
  mountPath: /models
  readOnly: true
{{- end }}
{{- end }}

{{- define "aegaeon.volumes" -}}
- name: config
  configMap:
    name: {{ .Release.Name }}-config
- name: data
  emptyDir: {}
{{- if .Values.models.existingClaim }}
- name: models
  persistentVolumeClaim:
    claimName: {{ .Values.models.existingClaim }}
    readOnly: true
{{- end }}
{{- end }}

{{/* Secrets reach the process as $(VAR) references in its arguments, never via the ConfigMap. */}}
{{- define "aegaeon.secretEnv" -}}
- name: AEGAEON_API_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .Values.existingSecret }}
      key: api-key
{{- if eq .Values.mode "cluster" }}
- name: AEGAEON_CLUSTER_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ .Values.existingSecret }}
      key: cluster-token
{{- end }}
{{- end }}
