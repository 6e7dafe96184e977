{{/* Names and labels, as `helm create` makes them. */}}
{{- define "lalo.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "lalo.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "lalo.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "lalo.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "lalo.selectorLabels" -}}
app.kubernetes.io/name: {{ include "lalo.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "lalo.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "lalo.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "lalo.secretName" -}}
{{- .Values.secret.existingSecret | default (include "lalo.fullname" .) }}
{{- end }}

{{/* A scalar as text: numbers as YAML wrote them (toString would print 1000000 as 1e+06). */}}
{{- define "lalo.string" -}}
{{- if kindIs "string" . }}{{ . }}{{ else }}{{ toJson . }}{{ end }}
{{- end }}

{{/* Whole seconds of shutdown_grace_ms, rounded up, plus the margin to sync the audit trail and exit. */}}
{{- define "lalo.terminationGracePeriodSeconds" -}}
{{- $ms := .Values.config.server.shutdown_grace_ms | default 30000 | int }}
{{- add (div (add $ms 999) 1000) (.Values.terminationGraceExtraSeconds | int) }}
{{- end }}

{{/*
One lalo.toml section from a values map; the keys the chart sets itself are left out. toJson
writes strings, numbers, booleans and lists of them as valid TOML values.
*/}}
{{- define "lalo.tomlKeys" -}}
{{- range $k, $v := omit (.values | default dict) "listen" "http_listen" "dir" "data_dir" "policies" "audit_log" }}
{{ $k }} = {{ $v | toJson }}
{{- end }}
{{- end }}

{{/* lalo.toml. Paths are absolute: the mounts of the StatefulSet. */}}
{{- define "lalo.config" -}}
# Rendered by the Helm chart from its values. No secret lives here: passwords, upstream URLs and
# MCP tokens are environment variables from the Secret {{ include "lalo.secretName" . }}.

[server]
listen = "0.0.0.0:6432"            # PostgreSQL wire protocol
http_listen = "0.0.0.0:6480"       # /healthz, /readyz, /metrics, /mcp
{{- include "lalo.tomlKeys" (dict "values" .Values.config.server) }}
{{- range .Values.users }}

[[users]]
name = {{ .name | toJson }}
password_env = {{ required "every user needs a passwordEnv" .passwordEnv | toJson }}
{{- with .attributes }}
[users.attributes]
{{- range $k, $v := . }}
{{ $k | toJson }} = {{ include "lalo.string" $v | toJson }}
{{- end }}
{{- end }}
{{- end }}

[catalog]
dir = "/etc/lalo/catalog"          # the image's table docs, and sources.toml from this ConfigMap
data_dir = "/var/lib/lalo"         # the persistent volume
{{- include "lalo.tomlKeys" (dict "values" .Values.config.catalog) }}

[planner]
{{- include "lalo.tomlKeys" (dict "values" .Values.config.planner) }}

[governance]
policies = "/etc/lalo/policies"
audit_log = "/var/lib/lalo/audit.log"
{{- include "lalo.tomlKeys" (dict "values" .Values.config.governance) }}

[mcp]
{{- range .Values.mcpTokens }}
[[mcp.tokens]]
token_env = {{ required "every MCP token needs a tokenEnv" .tokenEnv | toJson }}
user = {{ .user | toJson }}
{{- end }}
{{- end }}

{{/* catalog/sources.toml: the upstreams, each URL read from the variable url_env names. */}}
{{- define "lalo.sources" -}}
# Rendered by the Helm chart. The TPC-H demo schema lalo.tpch is generated, not listed here.
{{- range .Values.upstreams }}

[[upstream]]
name = {{ .name | toJson }}
kind = {{ .kind | default "postgres" | toJson }}
url_env = {{ required "every upstream needs a urlEnv" .urlEnv | toJson }}
schemas = {{ .schemas | default list | toJson }}
{{- end }}
{{- end }}
