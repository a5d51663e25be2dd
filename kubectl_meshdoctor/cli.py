"""Command line (placeholder until the CLI lands)."""


def main() -> None:
    raise SystemExit("kubectl-meshdoctor: CLI not yet implemented")
