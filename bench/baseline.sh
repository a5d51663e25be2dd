#!/usr/bin/env bash
# The baseline a namespace sweep has to beat: what someone would do by hand, one `kubectl exec` per
# piece of evidence, pod after pod, output discarded. It fetches what the plugin fetches (the argv of
# kubectl_meshdoctor/collect/proxy.py, readiness on 15021, then the istio-proxy log); bench/run.py
# checks from the lab API server's recorded requests that both ran the same commands.
#
#   KUBECONFIG=... bench/baseline.sh NAMESPACE [MAX_PODS]
#
# MAX_PODS (0: all) limits the loop to the first meshed pods, so the bench can time a sample and
# scale it: a sequential loop costs the same for every pod. Exits 1 if any command failed.
set -euo pipefail

namespace=${1:?usage: baseline.sh NAMESPACE [MAX_PODS]}
max_pods=${2:-0}
stats_filter='^((cluster_manager\.cds|listener_manager\.lds)\.(update_success|update_rejected)$|server\.state|listener_manager\.workers_started)'
failures=0

meshed_pods() {
  kubectl get pods -n "$namespace" \
    -o jsonpath='{range .items[*]}{.metadata.name}{" "}{.spec.containers[*].name}{"\n"}{end}' |
    awk '/ istio-proxy( |$)/ {print $1}'
}

in_proxy() {
  kubectl exec -n "$namespace" "$pod" -c istio-proxy -- "$@" >/dev/null 2>&1 || failures=$((failures + 1))
}

count=0
for pod in $(meshed_pods); do
  if [ "$max_pods" -gt 0 ] && [ "$count" -ge "$max_pods" ]; then
    break
  fi
  count=$((count + 1))
  in_proxy pilot-agent request GET healthz/ready --debug-port 15021
  in_proxy pilot-agent request GET server_info
  in_proxy pilot-agent request GET "stats?usedonly&filter=${stats_filter}"
  in_proxy pilot-agent request GET certs
  in_proxy pilot-agent request GET config_dump
  in_proxy cat /etc/resolv.conf
  kubectl logs -n "$namespace" "$pod" -c istio-proxy --since=900s --limit-bytes=8388608 >/dev/null 2>&1 ||
    failures=$((failures + 1))
done

echo "pods=${count} failures=${failures}"
[ "$failures" -eq 0 ]
