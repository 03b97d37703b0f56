"""The execution plane: dispatch of a fire, the ECS events consumer, the watchdog."""
