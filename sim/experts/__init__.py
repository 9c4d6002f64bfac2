"""Scripted experts, one per task, reading env.unwrapped.task_state() (backend-agnostic)."""
