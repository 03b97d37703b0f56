"""Reading cron files: a Snapshot of file texts to valid specs, diagnostics and held-back crons."""
