"""Importers: other tools' cron definitions to cron files (pure; no I/O).

Each source module turns already-read input (file text, or what the AWS adapter read) into
``ImportedCron`` documents and ``Refused`` jobs (``model.py``); ``cron5.py`` converts
standard 5-field cron to AWS's 6-field ``cron()``; ``verify.py`` proves each result: its
next 100 fire times equal the source's (evaluated independently with cronsim) and the
written file loads without errors; ``render.py`` writes the file's text.
"""
