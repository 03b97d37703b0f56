"""The functional core: pure functions and frozen data, no I/O, no boto3, no threads."""
