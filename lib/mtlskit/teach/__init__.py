"""Teaching: the design picture drawn from the params, and the hands-on labs on the sandbox."""
