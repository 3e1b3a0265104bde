{{- define "bss.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}{{ .Release.Name | trunc 50 | trimSuffix "-" }}{{- else -}}{{ printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" }}{{- end -}}
{{- end -}}

{{- define "bss.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "bss.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "bss.image" -}}
{{- $digest := index (default dict .root.Values.image.digests) .name -}}
{{- if $digest -}}{{ printf "%s/%s@%s" .root.Values.image.registry .name $digest }}
{{- else -}}{{ printf "%s/%s:%s" .root.Values.image.registry .name (default .root.Chart.AppVersion .root.Values.image.tag) }}{{- end -}}
{{- end -}}

{{/* Kafka security.protocol from the sasl/tls switches. */}}
{{- define "bss.kafkaProtocol" -}}
{{- if and .Values.kafka.sasl.enabled .Values.kafka.tls.enabled -}}SASL_SSL
{{- else if .Values.kafka.sasl.enabled -}}SASL_PLAINTEXT
{{- else if .Values.kafka.tls.enabled -}}SSL
{{- else -}}PLAINTEXT{{- end -}}
{{- end -}}

{{/* Environment shared by both services: Kafka connection and bucket. */}}
{{- define "bss.commonEnv" -}}
- name: KAFKA_BROKERS
  value: {{ required "kafka.brokers is required" .Values.kafka.brokers | quote }}
{{- if .Values.kafka.sasl.enabled }}
- name: KAFKA_SASL_MECHANISM
  value: {{ .Values.kafka.sasl.mechanism | quote }}
- name: KAFKA_USERNAME
  valueFrom: {secretKeyRef: {name: {{ required "kafka.sasl.existingSecret is required with SASL" .Values.kafka.sasl.existingSecret | quote }}, key: {{ .Values.kafka.sasl.usernameKey | quote }}}}
- name: KAFKA_PASSWORD
  valueFrom: {secretKeyRef: {name: {{ .Values.kafka.sasl.existingSecret | quote }}, key: {{ .Values.kafka.sasl.passwordKey | quote }}}}
{{- end }}
{{- if and .Values.kafka.tls.enabled .Values.kafka.tls.clientCertSecret .Values.kafka.tls.clientKeyPasswordKey }}
- name: KAFKA_SSL_KEY_PASSWORD
  valueFrom: {secretKeyRef: {name: {{ .Values.kafka.tls.clientCertSecret | quote }}, key: {{ .Values.kafka.tls.clientKeyPasswordKey | quote }}}}
{{- end }}
- name: BUCKET_TYPE
  value: {{ .Values.bucket.type | quote }}
- name: BUCKET_NAME
  value: {{ required "bucket.name is required" .Values.bucket.name | quote }}
- name: BUCKET_REGION
  value: {{ .Values.bucket.region | quote }}
{{- with .Values.bucket.endpoint }}
- name: BUCKET_ENDPOINT
  value: {{ . | quote }}
{{- end }}
{{- if ne (toString .Values.bucket.pathStyle) "" }}
- name: BUCKET_PATH_STYLE
  value: {{ .Values.bucket.pathStyle | quote }}
{{- end }}
{{- if and (eq .Values.bucket.type "s3") .Values.bucket.s3.existingSecret }}
- name: S3_KEY_ID
  valueFrom: {secretKeyRef: {name: {{ .Values.bucket.s3.existingSecret | quote }}, key: {{ .Values.bucket.s3.keyIdKey | quote }}}}
- name: S3_KEY
  valueFrom: {secretKeyRef: {name: {{ .Values.bucket.s3.existingSecret | quote }}, key: {{ .Values.bucket.s3.keyKey | quote }}}}
{{- end }}
{{- if and (eq .Values.bucket.type "google") .Values.bucket.gcs.existingSecret }}
- name: GOOGLE_APPLICATION_CREDENTIALS
  value: {{ printf "/app/keys/%s" .Values.bucket.gcs.key | quote }}
{{- end }}
{{- end -}}

{{- define "bss.commonVolumes" -}}
- name: config
  configMap: {name: {{ include "bss.fullname" . }}}
{{- if and (eq .Values.bucket.type "google") .Values.bucket.gcs.existingSecret }}
- name: gcs-key
  secret: {secretName: {{ .Values.bucket.gcs.existingSecret | quote }}}
{{- end }}
{{- if and .Values.kafka.tls.enabled .Values.kafka.tls.caSecret }}
- name: kafka-ca
  secret: {secretName: {{ .Values.kafka.tls.caSecret | quote }}}
{{- end }}
{{- if and .Values.kafka.tls.enabled .Values.kafka.tls.clientCertSecret }}
- name: kafka-client
  secret: {secretName: {{ .Values.kafka.tls.clientCertSecret | quote }}}
{{- end }}
{{- end -}}

{{- define "bss.commonMounts" -}}
- {name: config, mountPath: /app/config, readOnly: true}
{{- if and (eq .Values.bucket.type "google") .Values.bucket.gcs.existingSecret }}
- {name: gcs-key, mountPath: /app/keys, readOnly: true}
{{- end }}
{{- if and .Values.kafka.tls.enabled .Values.kafka.tls.caSecret }}
- {name: kafka-ca, mountPath: /app/kafka-ca, readOnly: true}
{{- end }}
{{- if and .Values.kafka.tls.enabled .Values.kafka.tls.clientCertSecret }}
- {name: kafka-client, mountPath: /app/kafka-client, readOnly: true}
{{- end }}
{{- end -}}

{{- define "bss.podSecurity" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile: {type: RuntimeDefault}
{{- end -}}

{{- define "bss.containerSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities: {drop: [ALL]}
{{- end -}}

{{- /* The argument is the scheme of the port: HTTP, or HTTPS for a reloader with TLS. */ -}}
{{- define "bss.probes" -}}
startupProbe:
  httpGet: {path: /-/health/started, port: http, scheme: {{ . }}}
  periodSeconds: 2
  failureThreshold: 60
livenessProbe:
  httpGet: {path: /-/health/live, port: http, scheme: {{ . }}}
  periodSeconds: 20
  failureThreshold: 3
readinessProbe:
  httpGet: {path: /-/health/ready, port: http, scheme: {{ . }}}
  periodSeconds: 10
  failureThreshold: 3
{{- end -}}

{{- define "bss.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}{{ default (include "bss.fullname" .) .Values.serviceAccount.name }}
{{- else -}}{{ required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}{{- end -}}
{{- end -}}

{{/* The container ports: http, and metrics when it has a port of its own. */}}
{{- define "bss.ports" -}}
- {name: http, containerPort: 3000}
{{- if .Values.metrics.port }}
- {name: metrics, containerPort: {{ .Values.metrics.port }}}
{{- end }}
{{- end -}}

{{- define "bss.metricsEnv" -}}
{{- if .Values.metrics.port }}
- {name: METRICS_PORT, value: {{ .Values.metrics.port | quote }}}
{{- end }}
{{- end -}}
