"""cronctl: container cron jobs on AWS, run the GitOps way."""

__version__ = "0.1.0"
