"""The notebook runner: the step harness every notebook uses, the tables and waits it shows, headless
runs with papermill, the HTML report, exit codes, and many environments at once (fleet)."""
