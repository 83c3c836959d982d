{{/*
Names and labels.
*/}}
{{- define "sessiond.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "sessiond.fullname" -}}
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

{{/* Names of the other objects (kept short enough for a DNS label). */}}
{{- define "sessiond.headlessName" -}}
{{- printf "%s-headless" (include "sessiond.fullname" . | trunc 54 | trimSuffix "-") }}
{{- end }}
{{- define "sessiond.motoName" -}}
{{- printf "%s-moto" (include "sessiond.fullname" . | trunc 58 | trimSuffix "-") }}
{{- end }}
{{- define "sessiond.generatedPageTokenSecretName" -}}
{{- printf "%s-page-tokens" (include "sessiond.fullname" . | trunc 51 | trimSuffix "-") }}
{{- end }}
{{- define "sessiond.motoCredentialsName" -}}
{{- printf "%s-moto-credentials" (include "sessiond.fullname" . | trunc 46 | trimSuffix "-") }}
{{- end }}

{{- define "sessiond.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "sessiond.labels" -}}
helm.sh/chart: {{ include "sessiond.chart" . }}
app.kubernetes.io/name: {{ include "sessiond.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: sessiond
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels of the server pods. */}}
{{- define "sessiond.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sessiond.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: server
{{- end }}

{{/* Selector labels of the development moto pods. */}}
{{- define "sessiond.motoSelectorLabels" -}}
app.kubernetes.io/name: {{ include "sessiond.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: moto-dev
{{- end }}

{{- define "sessiond.annotations" -}}
{{- with .Values.commonAnnotations -}}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{- define "sessiond.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "sessiond.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "sessiond.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
Store settings, resolved once: development mode points at the moto Service.
*/}}
{{- define "sessiond.bucket" -}}
{{- if .Values.devMode.moto.enabled }}
{{- default .Values.devMode.moto.bucket .Values.store.bucket }}
{{- else }}
{{- required "store.bucket is required: the S3 bucket of the sessions (or set devMode.moto.enabled=true for a throw-away test install)" .Values.store.bucket }}
{{- end }}
{{- end }}

{{- define "sessiond.storeUrl" -}}
{{- $prefix := trimAll "/" .Values.store.prefix }}
{{- if $prefix }}
{{- printf "s3://%s/%s" (include "sessiond.bucket" .) $prefix }}
{{- else }}
{{- printf "s3://%s" (include "sessiond.bucket" .) }}
{{- end }}
{{- end }}

{{- define "sessiond.motoEndpoint" -}}
{{- printf "http://%s:%d" (include "sessiond.motoName" .) (int .Values.devMode.moto.port) }}
{{- end }}

{{- define "sessiond.s3Endpoint" -}}
{{- if .Values.devMode.moto.enabled }}
{{- include "sessiond.motoEndpoint" . }}
{{- else }}
{{- .Values.store.endpoint }}
{{- end }}
{{- end }}

{{- define "sessiond.s3Region" -}}
{{- if .Values.devMode.moto.enabled }}
{{- default "us-east-1" .Values.store.region }}
{{- else }}
{{- .Values.store.region }}
{{- end }}
{{- end }}

{{/* The Secret (name and key) of the page-token HMAC key; empty when none. */}}
{{- define "sessiond.pageTokenSecretName" -}}
{{- if .Values.pageTokens.existingSecret }}
{{- .Values.pageTokens.existingSecret }}
{{- else if .Values.pageTokens.generate }}
{{- include "sessiond.generatedPageTokenSecretName" . }}
{{- end }}
{{- end }}
{{- define "sessiond.pageTokenSecretKey" -}}
{{- if .Values.pageTokens.existingSecret }}
{{- .Values.pageTokens.existingSecretKey }}
{{- else }}
{{- print "page-token-secret" }}
{{- end }}
{{- end }}

{{/*
Security: the plaintext health-only port opens when the API port cannot
answer kubelet's probes (TLS, or health checks that need a token).
*/}}
{{- define "sessiond.healthPortEnabled" -}}
{{- if or .Values.tls.enabled (and .Values.auth.enabled (not .Values.auth.exemptHealth)) }}true{{ end }}
{{- end }}
{{- define "sessiond.probePort" -}}
{{- if include "sessiond.healthPortEnabled" . }}{{ .Values.server.healthPort }}{{ else }}{{ .Values.server.grpcPort }}{{ end }}
{{- end }}
{{/* Where the client CA bundle of mutual TLS is read from. */}}
{{- define "sessiond.clientCaFile" -}}
{{- $dir := ternary .Values.tls.clientAuth.mountPath .Values.tls.mountPath (ne .Values.tls.clientAuth.existingSecret "") }}
{{- printf "%s/%s" (trimSuffix "/" $dir) .Values.tls.clientAuth.caKey }}
{{- end }}
{{/* A file of the auth Secret: "<mountPath>/<key>". */}}
{{- define "sessiond.authFile" -}}
{{- printf "%s/%s" (trimSuffix "/" .root.Values.auth.mountPath) .key }}
{{- end }}

{{/*
Engines. allowedModels: a list or one comma-separated string, rendered as the
server reads it ("a,b"); empty when none.
*/}}
{{- define "sessiond.allowedModels" -}}
{{- $given := .Values.engines.allowedModels }}
{{- $items := kindIs "string" $given | ternary (splitList "," (toString $given)) $given }}
{{- $models := list }}
{{- range $items }}
{{- with trim (toString .) }}{{ $models = append $models . }}{{ end }}
{{- end }}
{{- join "," $models }}
{{- end }}
{{/* The file of the OpenAI key: "<mountPath>/<key>" of the mounted Secret. */}}
{{- define "sessiond.openaiApiKeyFile" -}}
{{- with .Values.engines.openai.apiKey }}
{{- printf "%s/%s" (trimSuffix "/" .mountPath) .key }}
{{- end }}
{{- end }}
{{/* The engines file, from a ConfigMap or a Secret; empty when none. */}}
{{- define "sessiond.enginesFile" -}}
{{- with .Values.engines.file }}
{{- if or .existingConfigMap .existingSecret }}
{{- printf "%s/%s" (trimSuffix "/" .mountPath) .key }}
{{- end }}
{{- end }}
{{- end }}
{{/* Where engines.file.keySecrets entry "name" is mounted. */}}
{{- define "sessiond.engineKeySecretPath" -}}
{{- printf "%s/%s" (trimSuffix "/" .root.Values.engines.file.keySecretsMountPath) .name }}
{{- end }}

{{/* The TCP port of a URL: explicit, else 443 for https and 80 otherwise. */}}
{{- define "sessiond.urlPort" -}}
{{- $url := urlParse . }}
{{- $hostPort := splitList ":" $url.host }}
{{- $port := ternary "443" "80" (eq $url.scheme "https") }}
{{- if and (gt (len $hostPort) 1) (not (hasSuffix "]" $url.host)) }}
{{- $port = last $hostPort }}
{{- end }}
{{- $port }}
{{- end }}

{{/* terminationGracePeriodSeconds: longer than the server's drain + grace. */}}
{{- define "sessiond.terminationGracePeriodSeconds" -}}
{{- $shutdown := addf .Values.server.shutdownDrainSeconds .Values.server.shutdownGraceSeconds }}
{{- if kindIs "invalid" .Values.terminationGracePeriodSeconds }}
{{- ceil (addf $shutdown .Values.terminationGraceMarginSeconds) | int }}
{{- else if le (float64 .Values.terminationGracePeriodSeconds) $shutdown }}
{{- fail (printf "terminationGracePeriodSeconds (%v) must be longer than server.shutdownDrainSeconds + server.shutdownGraceSeconds (%v), or the kubelet kills the server before in-flight calls finish" .Values.terminationGracePeriodSeconds $shutdown) }}
{{- else }}
{{- .Values.terminationGracePeriodSeconds | int }}
{{- end }}
{{- end }}

{{/*
Checks of value combinations the schema cannot express with a clear message.
*/}}
{{- define "sessiond.validate" -}}
{{- if and .Values.devMode.moto.enabled .Values.store.endpoint }}
{{- fail "devMode.moto.enabled points the store at the moto mock: leave store.endpoint empty" }}
{{- end }}
{{- if and .Values.devMode.moto.enabled .Values.s3Credentials.existingSecret }}
{{- fail "devMode.moto.enabled uses dummy credentials: leave s3Credentials.existingSecret empty" }}
{{- end }}
{{- if and (not .Values.devMode.moto.enabled) (not (include "sessiond.pageTokenSecretName" .)) }}
{{- fail "page tokens need a shared secret: set pageTokens.existingSecret (or pageTokens.generate=true); the server's built-in development key is allowed in devMode.moto only" }}
{{- end }}
{{- if and .Values.auth.enabled (not .Values.auth.existingSecret) }}
{{- fail "auth.enabled needs auth.existingSecret: the Secret holding the token file" }}
{{- end }}
{{- if and .Values.tls.enabled (not .Values.tls.existingSecret) }}
{{- fail "tls.enabled needs tls.existingSecret: a kubernetes.io/tls Secret" }}
{{- end }}
{{- if and .Values.auth.enabled .Values.tls.enabled (eq (clean .Values.auth.mountPath) (clean .Values.tls.mountPath)) }}
{{- fail "auth.mountPath and tls.mountPath must differ" }}
{{- end }}
{{- if .Values.auth.enabled }}
{{- $jwt := .Values.auth.jwt }}
{{- if not (or .Values.auth.tokensFileKey $jwt.keyFileKey $jwt.jwksFileKey $jwt.secretFileKey) }}
{{- fail "auth.enabled needs auth.tokensFileKey or a JWT key (auth.jwt.keyFileKey, jwksFileKey or secretFileKey)" }}
{{- end }}
{{- if and (or $jwt.keyFileKey $jwt.jwksFileKey $jwt.secretFileKey) (not $jwt.audience) }}
{{- fail "auth.jwt needs auth.jwt.audience: without it a token minted for another service would be accepted" }}
{{- end }}
{{- end }}
{{- $mounts := list (clean "/tmp") }}
{{- if .Values.auth.enabled }}{{ $mounts = append $mounts (clean .Values.auth.mountPath) }}{{ end }}
{{- if .Values.tls.enabled }}{{ $mounts = append $mounts (clean .Values.tls.mountPath) }}{{ end }}
{{- if .Values.engines.openai.apiKey.existingSecret }}{{ $mounts = append $mounts (clean .Values.engines.openai.apiKey.mountPath) }}{{ end }}
{{- if include "sessiond.enginesFile" . }}{{ $mounts = append $mounts (clean .Values.engines.file.mountPath) }}{{ end }}
{{- if .Values.engines.file.keySecrets }}
{{- $mounts = append $mounts (clean .Values.engines.file.keySecretsMountPath) }}
{{- range .Values.engines.file.keySecrets }}
{{- $mounts = append $mounts (clean (include "sessiond.engineKeySecretPath" (dict "root" $ "name" .))) }}
{{- end }}
{{- end }}
{{- if ne (len $mounts) (len (uniq $mounts)) }}
{{- fail (printf "the mount paths of auth, tls and engines must differ from each other and from /tmp: %s" (join ", " $mounts)) }}
{{- end }}
{{- if and .Values.engines.file.existingConfigMap .Values.engines.file.existingSecret }}
{{- fail "engines.file: set existingConfigMap or existingSecret, not both" }}
{{- end }}
{{- if and .Values.tls.clientAuth.enabled (not .Values.tls.enabled) }}
{{- fail "tls.clientAuth.enabled (mutual TLS) needs tls.enabled" }}
{{- end }}
{{- if and .Values.tls.clientAuth.enabled .Values.tls.clientAuth.existingSecret (has (clean .Values.tls.clientAuth.mountPath) (list (clean .Values.tls.mountPath) (clean .Values.auth.mountPath))) }}
{{- fail "tls.clientAuth.mountPath must differ from tls.mountPath and auth.mountPath" }}
{{- end }}
{{- if include "sessiond.healthPortEnabled" . }}
{{- if eq (int .Values.server.healthPort) (int .Values.server.grpcPort) }}
{{- fail "server.healthPort and server.grpcPort must differ" }}
{{- end }}
{{- if and .Values.metrics.enabled (eq (int .Values.metrics.port) (int .Values.server.healthPort)) }}
{{- fail "metrics.port and server.healthPort must differ" }}
{{- end }}
{{- end }}
{{- if and .Values.metrics.enabled (eq (int .Values.metrics.port) (int .Values.server.grpcPort)) }}
{{- fail "metrics.port and server.grpcPort must differ" }}
{{- end }}
{{- if and .Values.autoscaling.enabled (gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas)) }}
{{- fail "autoscaling.minReplicas must not exceed autoscaling.maxReplicas" }}
{{- end }}
{{- if and .Values.autoscaling.enabled (kindIs "invalid" .Values.autoscaling.targetCPUUtilizationPercentage) (kindIs "invalid" .Values.autoscaling.targetMemoryUtilizationPercentage) }}
{{- fail "autoscaling needs targetCPUUtilizationPercentage or targetMemoryUtilizationPercentage" }}
{{- end }}
{{- $_ := include "sessiond.bucket" . }}
{{- $_ := include "sessiond.terminationGracePeriodSeconds" . }}
{{- end }}
