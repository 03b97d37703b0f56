"""What `cronctl status` / `list` print and the daemon's status page, from typed inputs."""
