"""The namespace's shared infrastructure that bootstrap ensures: queues, rules, cluster, roles."""
