{{- define "orgops.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "orgops.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "orgops.labels" -}}
app.kubernetes.io/name: {{ include "orgops.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "orgops.selectorLabels" -}}
app.kubernetes.io/name: {{ include "orgops.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "orgops.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "orgops.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* What the operator does in every namespace it watches. */}}
{{- define "orgops.watchRules" -}}
# get: an OrgMembership reads its Organization; nothing reads one OrgMembership.
- apiGroups: ["orgops.io"]
  resources: ["organizations"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["orgops.io"]
  resources: ["orgmemberships"]
  verbs: ["list", "watch", "patch"]
- apiGroups: ["orgops.io"]
  resources: ["vendorconnections"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["orgops.io"]
  resources: ["organizations/status", "orgmemberships/status", "vendorconnections/status"]
  verbs: ["patch"]
{{ include "orgops.secretRules" . }}
# patch: a namespace's own VendorConnection keeps its Secret (finalizer
# orgops.io/connection-in-use) while Organizations use it, so cleanup can still log in.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["patch"]
{{ include "orgops.eventRules" . }}
{{- end -}}


{{/* Events: created, and patched when the same one repeats. */}}
{{- define "orgops.eventRules" -}}
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end -}}


{{/* Secrets: watched metadata-only (list, watch) to notice changes; data read with get, only for
the Secrets that connections name. RBAC cannot tell a metadata-only list from a full one, so
the narrowing is in what the operator does; per-namespace RBAC (watchNamespaces) narrows which
namespaces it may read at all. */}}
{{- define "orgops.secretRules" -}}
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch"]
{{- end -}}


{{/* The Secret holding the metrics serving certificate. */}}
{{- define "orgops.metricsTlsSecret" -}}
{{- default (printf "%s-metrics-tls" (include "orgops.fullname" .)) .Values.metrics.secure.certSecret -}}
{{- end -}}
