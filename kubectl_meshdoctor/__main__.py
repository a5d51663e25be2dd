"""``python -m kubectl_meshdoctor`` runs the same CLI as the ``kubectl-meshdoctor`` script."""

from kubectl_meshdoctor.cli import main

if __name__ == "__main__":
    main()
