"""The entry points: the CLI, the HTTP routes, the charts and the resources a process shares."""
