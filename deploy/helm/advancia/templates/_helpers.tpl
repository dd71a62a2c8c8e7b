{{/* Chart name, truncated to the 63 characters Kubernetes names allow. */}}
{{- define "advancia.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Release-scoped base name; components append "-<component>". */}}
{{- define "advancia.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Name of one component's objects: <fullname>-<component>. Call with (list $ "component"). */}}
{{- define "advancia.component" -}}
{{- $root := index . 0 -}}
{{- printf "%s-%s" (include "advancia.fullname" $root) (index . 1) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "advancia.labels" -}}
{{- $root := index . 0 -}}
helm.sh/chart: {{ printf "%s-%s" $root.Chart.Name $root.Chart.Version | replace "+" "_" }}
app.kubernetes.io/managed-by: {{ $root.Release.Service }}
app.kubernetes.io/version: {{ $root.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: advancia
{{ include "advancia.selectorLabels" . }}
{{- end -}}

{{- define "advancia.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ include "advancia.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "advancia.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "advancia.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "advancia.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Pod-level settings every workload shares. */}}
{{- define "advancia.podSpecCommon" -}}
serviceAccountName: {{ include "advancia.serviceAccountName" . }}
automountServiceAccountToken: false
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* DATABASE_URL from the existing Secret (never a value in this chart). */}}
{{- define "advancia.databaseEnv" -}}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ required "database.existingSecret is required" .Values.database.existingSecret }}
      key: {{ .Values.database.urlKey }}
{{- end -}}

{{/* ADVANCIA_PUBLIC_URL from `publicUrl`: `advancia serve` refuses to start without an
https one (ADR 0024), so rendering fails first, saying what to set. */}}
{{- define "advancia.publicUrlEnv" -}}
{{- $url := .Values.publicUrl | default "" | toString | trim -}}
{{- if not $url }}
{{- fail "publicUrl is required: the API's public https origin (ADVANCIA_PUBLIC_URL), e.g. --set publicUrl=https://pay.example.com; payment links are built only from it" }}
{{- end }}
{{- if not (regexMatch "^https://[^/?#@\\s]+(/[^?#\\s]*)?$" $url) }}
{{- fail (printf "publicUrl %q must be an https URL (e.g. https://pay.example.com): advancia serve refuses any other outside --dev" $url) }}
{{- end }}
{{- if hasKey .Values.env "ADVANCIA_PUBLIC_URL" }}
{{- fail "set the public URL as publicUrl, not env.ADVANCIA_PUBLIC_URL" }}
{{- end }}
{{- with .Values.config.advancia }}{{ if hasKey . "public_url" }}
{{- fail "set the public URL as publicUrl, not config.advancia.public_url" }}
{{- end }}{{ end }}
- name: ADVANCIA_PUBLIC_URL
  value: {{ $url | quote }}
{{- end -}}

{{/* Plain settings as environment variables, sorted by name. */}}
{{- define "advancia.plainEnv" -}}
{{- range $k, $v := . }}
- name: {{ $k }}
  value: {{ $v | toString | quote }}
{{- end }}
{{- end -}}

{{/* Topology spread across nodes and zones for workloads with several replicas. */}}
{{- define "advancia.spread" -}}
{{- $root := index . 0 -}}
topologySpreadConstraints:
  - maxSkew: 1
    topologyKey: kubernetes.io/hostname
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels:
        {{- include "advancia.selectorLabels" . | nindent 8 }}
  - maxSkew: 1
    topologyKey: topology.kubernetes.io/zone
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels:
        {{- include "advancia.selectorLabels" . | nindent 8 }}
{{- end -}}
