"""kubectl-meshdoctor: diagnose an Istio mesh from the symptom to the root cause.

Three layers, data flowing one way: ``collect`` (the only code that talks to a cluster) builds an
evidence bundle, ``checks`` are pure functions of that bundle, ``report`` renders the result.
"""

__version__ = "0.1.0"
