{{/* The chart's name, or nameOverride. */}}
{{- define "shoal.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name: fullnameOverride, or release name + chart name (once). */}}
{{- define "shoal.fullname" -}}
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

{{/* The operator's resource name: Deployment, ClusterRole or Roles, their bindings. */}}
{{- define "shoal.operatorName" -}}
{{- printf "%s-operator" (include "shoal.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels: stable for the life of a release (a Deployment's selector is immutable). */}}
{{- define "shoal.selectorLabels" -}}
app.kubernetes.io/name: {{ include "shoal.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{/* Labels on every object of the chart. */}}
{{- define "shoal.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "shoal.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: shoal
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The ServiceAccount the operator runs as. */}}
{{- define "shoal.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "shoal.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The operator image: repository:tag, the tag defaulting to the chart's appVersion. */}}
{{- define "shoal.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
The rules the operator needs in each namespace it serves, every one of them commented with
its purpose. They are exactly the API calls of operator/shoal_operator (kube.py, handlers.py,
watch.py) and of kopf serving them; tests/k8s/test_chart.py runs the operator with
nothing more and checks with `kubectl auth can-i` that nothing else is granted.
*/}}
{{- define "shoal.namespacedRules" -}}
# Queues: kopf lists and watches them and patches its bookkeeping annotations on them; a
# WorkerPool's reconcile reads the Queues it names.
- apiGroups: [shoal.dev]
  resources: [queues]
  verbs: [get, list, watch, patch]
# WorkerPools: kopf lists and watches them and patches its bookkeeping annotations on them.
- apiGroups: [shoal.dev]
  resources: [workerpools]
  verbs: [list, watch, patch]
# Status of both: depth, replicas, conditions, last scale (the status subresource).
- apiGroups: [shoal.dev]
  resources: [queues/status, workerpools/status]
  verbs: [patch]
# A pool's Deployment has an owner reference with blockOwnerDeletion; clusters running the
# OwnerReferencesPermissionEnforcement admission plugin (OpenShift, hardened set-ups) allow
# setting it only to those who may update the owner's finalizers.
- apiGroups: [shoal.dev]
  resources: [workerpools/finalizers]
  verbs: [update]
# Worker Deployments: read and follow them (readiness, hand edits), create them, put back
# what a hand edit changed (update). No delete: garbage collection follows the owner
# reference when a WorkerPool goes.
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, update]
# Scaling: the replica count only, through the scale subresource.
- apiGroups: [apps]
  resources: [deployments/scale]
  verbs: [patch]
# A Queue's backend URL, read from the Secret it names: get by name only. No list or watch,
# so no Secret the operator is not pointed at is ever read.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get]
# Worker pods: follow them (a worker that keeps exiting becomes the pool's condition, with
# its last words), and before a scale-down annotate each with its worker's tasks in flight
# (the pod deletion cost), so that idle pods are removed first.
- apiGroups: [""]
  resources: [pods]
  verbs: [list, watch, patch]
# Events: every scale, every problem a user must fix (the operator's and kopf's own).
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- end }}

{{/* Cluster-scoped reads kopf makes, in either mode. */}}
{{- define "shoal.observationRules" -}}
# kopf follows the CRDs (e.g. `kubectl apply -f crds/` after the operator started) and
# re-discovers the resources it serves when they change.
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [list, watch]
{{- end }}

{{/* The board's name, selector labels and labels (component "board"). */}}
{{- define "shoal.boardName" -}}
{{- printf "%s-board" (include "shoal.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "shoal.boardSelectorLabels" -}}
app.kubernetes.io/name: {{ include "shoal.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: board
{{- end }}

{{- define "shoal.boardLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "shoal.boardSelectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: shoal
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The backend certificates of values.tls (operator and board pods): a volume and its
mount, read-only at /etc/shoal/tls, the path the backend URLs name the files by. */}}
{{- define "shoal.tlsMount" -}}
{{- if .Values.tls.secretName }}
- name: tls
  mountPath: /etc/shoal/tls
  readOnly: true
{{- end }}
{{- end }}

{{- define "shoal.tlsVolume" -}}
{{- if .Values.tls.secretName }}
- name: tls
  secret:
    secretName: {{ .Values.tls.secretName }}
    defaultMode: 0444
{{- end }}
{{- end }}
