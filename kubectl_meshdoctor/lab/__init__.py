"""A local mesh for tests and demos: a Kubernetes API server of our own plus real Envoy sidecars.

`Lab` (lab.py) loads scenarios (scenarios/*.yaml, expanded by scenario.py), generates Istio-shaped
Envoy configuration from the scenario's objects (xds.py), runs one real Envoy per meshed pod
(envoy.py) behind an emulated pilot-agent (agent.py), and serves the objects through the API server
(apiserver.py). `python -m kubectl_meshdoctor.lab up` runs it by hand.
"""
