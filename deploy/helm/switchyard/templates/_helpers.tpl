{{/*
switchyard.name is the chart's name, or nameOverride.
*/}}
{{- define "switchyard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
switchyard.fullname names every object of the release: fullnameOverride, or
the release name when it contains the chart's name, or RELEASE-NAME.
*/}}
{{- define "switchyard.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "switchyard.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
switchyard.selectorLabels select the controller's pods; the name and
component are those of deploy/install.
*/}}
{{- define "switchyard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "switchyard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end }}

{{- define "switchyard.labels" -}}
helm.sh/chart: {{ include "switchyard.chart" . }}
{{ include "switchyard.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
switchyard.serviceAccountName is serviceAccount.name, or the full name when
the chart creates the ServiceAccount.
*/}}
{{- define "switchyard.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "switchyard.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is empty but serviceAccount.create is false: name an existing ServiceAccount, or set serviceAccount.create: true" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
switchyard.watchNamespace is the one namespace a namespace-scoped install
watches (watchNamespace, or the release namespace), and empty for a
cluster-wide one. A watchNamespace with scope cluster is an error: it would
be silently ignored otherwise.
*/}}
{{- define "switchyard.watchNamespace" -}}
{{- if eq .Values.scope "namespace" }}
{{- default .Release.Namespace .Values.watchNamespace }}
{{- else if .Values.watchNamespace }}
{{- fail (printf "watchNamespace is %q but scope is cluster, which watches all namespaces: set scope: namespace, or leave watchNamespace empty" .Values.watchNamespace) }}
{{- end }}
{{- end }}

{{- define "switchyard.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
switchyard.rules are the rules of the ClusterRole that controller-gen
generates into deploy/rbac/role.yaml from the controller's kubebuilder
markers. files/role.yaml is a symbolic link to that file, so the rules are
written in one place only; `helm package` stores its contents.
*/}}
{{- define "switchyard.rules" -}}
{{- $role := .Files.Get "files/role.yaml" | fromYaml }}
{{- if or (not $role.rules) $role.Error }}
{{- fail (printf "files/role.yaml (a link to deploy/rbac/role.yaml) has no rules: %v" (default "file missing or empty" $role.Error)) }}
{{- end }}
{{- toYaml $role.rules }}
{{- end }}
