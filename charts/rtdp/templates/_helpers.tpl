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
