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

{{/* Where validator `.name` publishes its signed attestations: its own Service, the
location relayers fetch from and the one it announces. Call with (list $ instance). */}}
{{- define "advancia.validatorLocation" -}}
{{- $root := index . 0 -}}
{{- $name := include "advancia.component" (list $root (printf "validator-%s" (index . 1).name)) -}}
{{- printf "http://%s.%s.svc:%v" $name $root.Release.Namespace $root.Values.validators.port -}}
{{- end -}}

{{/* A validator's origin-chain RPC: `rpc`, else the value of `--rpc` in its args (EVM
validators may keep it there). Call with an instance. */}}
{{- define "advancia.validatorRpc" -}}
{{- $rpc := .rpc | default "" -}}
{{- $args := .args | default list -}}
{{- range $i, $a := $args -}}
{{- if and (eq $a "--rpc") (lt (add1 $i) (len $args)) -}}
{{- $rpc = index $args (add1 $i) -}}
{{- else if hasPrefix "--rpc=" $a -}}
{{- $rpc = trimPrefix "--rpc=" $a -}}
{{- end -}}
{{- end -}}
{{- $rpc -}}
{{- end -}}

{{/* Validators share nothing (issue #19): every instance has its own name (so its own
volume and embedded store), its own key, its own store and its own RPC node, and no
store is a Secret the rest of the release reads (the indexer's and API's database above
all). The schema cannot compare list items, so these are refused here, by name. Two
different Secrets holding the same URL are beyond the chart's sight (deploy/README.md). */}}
{{- define "advancia.validatorChecks" -}}
{{- $root := . -}}
{{- $names := dict -}}
{{- $keys := dict -}}
{{- $stores := dict -}}
{{- $rpcs := dict -}}
{{- $db := $root.Values.database -}}
{{- $shared := dict -}}
{{- $_ := set $shared (toString $db.existingSecret) "database.existingSecret (the indexer's and API's database)" -}}
{{- with $root.Values.auth.existingSecret }}{{ $_ := set $shared . "auth.existingSecret" }}{{ end -}}
{{- with $root.Values.redis.existingSecret }}{{ $_ := set $shared . "redis.existingSecret" }}{{ end -}}
{{- range $root.Values.extraEnvFromSecrets }}{{ $_ := set $shared . "extraEnvFromSecrets (loaded whole into the API pods)" }}{{ end -}}
{{- range $root.Values.validators.instances -}}
{{- $inst := . -}}
{{- $v := .name -}}
{{- if hasKey $names $v -}}
{{- fail (printf "validators.instances: two validators are named %q: each needs its own name (its StatefulSet, volume and embedded store are named after it)" $v) -}}
{{- end -}}
{{- $_ := set $names $v true -}}
{{- $k := printf "%s/%s" .keySecret.name .keySecret.key -}}
{{- if hasKey $keys $k -}}
{{- fail (printf "validators %s and %s share the key Secret %s: one signer per key, or the M-of-N quorum is fewer real signers" (get $keys $k) $v $k) -}}
{{- end -}}
{{- $_ := set $keys $k $v -}}
{{- range $a := .args | default list -}}
{{- range $flag := list "--store" "--attestations-dir" "--listen" "--announce-location" "--key-file" "--database-url" -}}
{{- if or (eq $a $flag) (hasPrefix (printf "%s=" $flag) $a) -}}
{{- fail (printf "validator %s: %s is set by the chart, not in args (the store is `store`, the RPC `rpc`; a validator never gets the shared database)" $v $flag) -}}
{{- end -}}
{{- end -}}
{{- if and $inst.rpc (or (eq $a "--rpc") (hasPrefix "--rpc=" $a)) -}}
{{- fail (printf "validator %s: --rpc both in args and as rpc: set it once, as rpc" $v) -}}
{{- end -}}
{{- end -}}
{{- $rpc := include "advancia.validatorRpc" . -}}
{{- if not $rpc -}}
{{- fail (printf "validator %s: rpc is required: the URL of its own %s RPC node, through which it checks every message before signing" $v (ternary "Solana" "origin-chain" (eq .mode "solana"))) -}}
{{- end -}}
{{- if hasKey $rpcs $rpc -}}
{{- fail (printf "validators %s and %s use the same RPC node %s: each validator must see the origin chain through its own node, or one lying node gets every signature" (get $rpcs $rpc) $v $rpc) -}}
{{- end -}}
{{- $_ := set $rpcs $rpc $v -}}
{{- $store := .store | default (dict "embedded" true) -}}
{{- with $store.urlSecret -}}
{{- $s := printf "%s/%s" .name .key -}}
{{- if hasKey $shared .name -}}
{{- fail (printf "validator %s: store.urlSecret %s is %s: a validator's store is its own database, and it holds no credentials of the others'; use a Secret of its own" $v $s (get $shared .name)) -}}
{{- end -}}
{{- if hasKey $stores $s -}}
{{- fail (printf "validators %s and %s share the store %s: each validator keeps its claims and signatures in its own store (store.embedded, or a Secret with its own database URL)" (get $stores $s) $v $s) -}}
{{- end -}}
{{- $_ := set $stores $s $v -}}
{{- end -}}
{{- end -}}
{{- end -}}
