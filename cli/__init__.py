"""The `gencompress` command line (installed as the package gencompress_cli)."""
