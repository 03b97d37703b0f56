"""The Git source: cron files read from a commit or a plain folder."""
