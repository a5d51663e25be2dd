#!/usr/bin/env bash
# The baseline a namespace sweep has to beat: what someone would do by hand, one `kubectl exec` per
# piece of evidence, pod after pod, output discarded. It fetches what the plugin fetches: COMMANDS is
# a file with one command per line, its arguments separated by tabs (bench/run.py writes it from the
# plugin's own table, kubectl_meshdoctor/collect/admin_requests.py), then the istio-proxy log.
# bench/run.py checks from the lab API server's recorded requests that both ran the same commands.
#
#   KUBECONFIG=... bench/baseline.sh NAMESPACE MAX_PODS COMMANDS
#
# MAX_PODS (0: all) limits the loop to the first meshed pods, so the bench can time a sample and
# scale it: a sequential loop costs the same for every pod. Exits 1 if any command failed.
set -euo pipefail

namespace=${1:?usage: baseline.sh NAMESPACE MAX_PODS COMMANDS}
max_pods=${2:-0}
commands=${3:?usage: baseline.sh NAMESPACE MAX_PODS COMMANDS}
failures=0

meshed_pods() {
  kubectl get pods -n "$namespace" \
    -o jsonpath='{range .items[*]}{.metadata.name}{" "}{.spec.containers[*].name}{"\n"}{end}' |
    awk '/ istio-proxy( |$)/ {print $1}'
}

count=0
for pod in $(meshed_pods); do
  if [ "$max_pods" -gt 0 ] && [ "$count" -ge "$max_pods" ]; then
    break
  fi
  count=$((count + 1))
  while IFS=$'\t' read -r -a argv; do
    kubectl exec -n "$namespace" "$pod" -c istio-proxy -- "${argv[@]}" >/dev/null 2>&1 || failures=$((failures + 1))
  done <"$commands"
  kubectl logs -n "$namespace" "$pod" -c istio-proxy --since=900s --limit-bytes=8388608 >/dev/null 2>&1 ||
    failures=$((failures + 1))
done

echo "pods=${count} failures=${failures}"
[ "$failures" -eq 0 ]
