"""``python -m kaesong_thermal`` runs the CLI."""

from kaesong_thermal.cli import run

run()
