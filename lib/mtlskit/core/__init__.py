"""Foundations every layer uses: the kit's error hierarchy, the check value, progress bars and the one
poll loop. Nothing here knows about Google Cloud, Kubernetes or params."""
