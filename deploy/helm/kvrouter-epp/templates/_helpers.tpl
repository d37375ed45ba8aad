{{/* Names and labels shared by every template. */}}

{{- define "kvrouter-epp.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* <release>-epp, as the GIE charts name the picker (vLLM dials <release>-epp.<ns>.svc). */}}
{{- define "kvrouter-epp.fullname" -}}
{{- printf "%s-epp" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "kvrouter-epp.poolName" -}}
{{- default .Release.Name .Values.inferencePool.name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "kvrouter-epp.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "kvrouter-epp.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "kvrouter-epp.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kvrouter-epp.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
inferencepool: {{ include "kvrouter-epp.fullname" . }}
{{- end -}}

{{- define "kvrouter-epp.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | quote }}
{{ include "kvrouter-epp.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}
