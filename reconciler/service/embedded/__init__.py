"""Embedded mode: an in-process AWS emulator plus local stand-ins for what it cannot do
(fire schedules, run containers, emit ECS task state change events)."""
