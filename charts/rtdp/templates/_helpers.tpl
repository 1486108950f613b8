{{/* The release's base name, truncated to 63 characters (a DNS label). */}}
{{- define "rtdp.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Name of the operator's objects (Deployment, ServiceAccount, Role, peering). */}}
{{- define "rtdp.operator.fullname" -}}
{{- printf "%s-operator" (include "rtdp.fullname" . | trunc 54 | trimSuffix "-") -}}
{{- end -}}

{{/* Selector labels: name and instance only (a selector cannot change later). */}}
{{- define "rtdp.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Every object's labels. */}}
{{- define "rtdp.labels" -}}
{{ include "rtdp.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: rtdp
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* Name of one component's objects: "<fullname>-<component>", within 63 characters.
     Call with (dict "root" $ "component" "converter"). */}}
{{- define "rtdp.component.fullname" -}}
{{- $suffix := printf "-%s" .component -}}
{{- printf "%s%s" (include "rtdp.fullname" .root | trunc (int (sub 63 (len $suffix))) | trimSuffix "-") $suffix -}}
{{- end -}}

{{/* Labels of one component's objects, and its selector (name, instance, component).
     Call with (dict "root" $ "component" "converter"). */}}
{{- define "rtdp.component.labels" -}}
{{ include "rtdp.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "rtdp.component.selectorLabels" -}}
{{ include "rtdp.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* "repository:tag" of an image value ({repository, tag}); the tag defaults to the chart's
     appVersion. A tag of "latest" (or none at all) fails: a deployed image must be traceable. */}}
{{- define "rtdp.image" -}}
{{- $tag := .image.tag | default .root.Chart.AppVersion | toString -}}
{{- if or (eq $tag "latest") (eq $tag "") -}}
{{- fail (printf "%s.image.tag: %q is not allowed; pin a version or commit SHA" .what $tag) -}}
{{- end -}}
{{- printf "%s:%s" .image.repository $tag -}}
{{- end -}}

{{/* The Pod- and container-level security contexts every rtdp workload runs with. */}}
{{- define "rtdp.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsUser }}
fsGroup: {{ .Values.securityContext.runAsUser }}
seccompProfile: {type: RuntimeDefault}
{{- end -}}

{{- define "rtdp.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities: {drop: [ALL]}
{{- end -}}

{{/* RTDP_QUEUE_URL: the configured queue, else the in-cluster ElasticMQ queue (emulators). */}}
{{- define "rtdp.queueUrl" -}}
{{- if .Values.config.queueUrl -}}
{{- .Values.config.queueUrl -}}
{{- else if .Values.emulators.enabled -}}
{{- printf "http://%s:9324/000000000000/%s" (include "rtdp.component.fullname" (dict "root" . "component" "elasticmq")) .Values.emulators.elasticmq.queueName -}}
{{- else -}}
{{- fail "config.queueUrl is required (an SQS queue URL) unless emulators.enabled: pods cannot share the embedded SQLite queue" -}}
{{- end -}}
{{- end -}}

{{/* RTDP_LAKE_URI: the configured lake, else the in-cluster MinIO bucket (emulators). */}}
{{- define "rtdp.lakeUri" -}}
{{- if .Values.config.lakeUri -}}
{{- if not (hasPrefix "s3://" .Values.config.lakeUri) -}}
{{- fail (printf "config.lakeUri must be s3://bucket/prefix (pods share no local disk), not %q" .Values.config.lakeUri) -}}
{{- end -}}
{{- .Values.config.lakeUri -}}
{{- else if .Values.emulators.enabled -}}
{{- printf "s3://%s/lake" .Values.emulators.minio.bucket -}}
{{- else -}}
{{- fail "config.lakeUri is required (s3://bucket/prefix) unless emulators.enabled" -}}
{{- end -}}
{{- end -}}

{{/* The Secret holding the emulators' credentials: the user's, else the one the chart generates. */}}
{{- define "rtdp.emulators.secretName" -}}
{{- .Values.emulators.existingSecret | default (include "rtdp.component.fullname" (dict "root" . "component" "emulators")) -}}
{{- end -}}

{{/* Environment shared by the converter and the default EventProducer's pods' AWS clients. */}}
{{- define "rtdp.awsEnv" -}}
- name: AWS_REGION
  value: {{ .Values.config.awsRegion | quote }}
{{- if .Values.emulators.enabled }}
- name: AWS_ENDPOINT_URL_S3
  value: {{ printf "http://%s:9000" (include "rtdp.component.fullname" (dict "root" . "component" "minio")) | quote }}
- name: AWS_ACCESS_KEY_ID
  valueFrom: {secretKeyRef: {name: {{ include "rtdp.emulators.secretName" . }}, key: accessKey}}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom: {secretKeyRef: {name: {{ include "rtdp.emulators.secretName" . }}, key: secretKey}}
{{- end }}
{{- end -}}

{{/* NetworkPolicy egress rule: DNS to any resolver (kube-dns, node-local DNS). */}}
{{- define "rtdp.networkPolicy.dnsEgress" -}}
- ports:
    - {protocol: UDP, port: 53}
    - {protocol: TCP, port: 53}
{{- end -}}

{{/* NetworkPolicy egress rules of the pods that move data: DNS, HTTPS (SQS, S3, STS for IRSA),
     and with emulators the in-cluster MinIO and ElasticMQ pods only. */}}
{{- define "rtdp.networkPolicy.dataEgress" -}}
{{ include "rtdp.networkPolicy.dnsEgress" . }}
- ports:
    - {protocol: TCP, port: 443}
{{- if .Values.emulators.enabled }}
- to:
    - podSelector:
        matchLabels:
          {{- include "rtdp.selectorLabels" . | nindent 10 }}
        matchExpressions:
          - {key: app.kubernetes.io/component, operator: In, values: [minio, elasticmq]}
  ports:
    - {protocol: TCP, port: 9000}
    - {protocol: TCP, port: 9324}
{{- end }}
{{- end -}}
