"""The cloud-client layer: the one place that knows which target the kit talks to (clients), the one
wait for long-running operations, and the marker the kit puts on what it creates."""
