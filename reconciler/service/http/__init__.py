"""The daemon's HTTP endpoint: server, routes, SNS signature checks, status page."""
