"""Configuration: one YAML file per environment, validated before anything talks to an API, and where
things live on disk."""
