"""The plan: desired versus observed resources (``planner``), its model and its rendering."""
