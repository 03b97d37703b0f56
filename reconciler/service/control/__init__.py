"""The control plane: one reconcile pass (observe, plan, apply) and the leader's loop."""
