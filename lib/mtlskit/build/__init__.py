"""Build steps: each one plans its changes as data, applies them when asked, and re-plans. Preflight
comes first; teardown removes only what these steps made. A new build step goes here."""
