"""Where the AWS test vectors live (copied from their public sources; see PROVENANCE.md)."""

from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
