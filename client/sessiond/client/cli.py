"""The `sessiond` command line (placeholder until the CLI lands)."""


def main() -> None:
    """Entry point of the ``sessiond`` console script."""
    from sessiond.server.main import main as serve_main

    serve_main()
