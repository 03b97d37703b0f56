"""Local HTTP fakes of third-party services, shaped exactly like their documented APIs."""
