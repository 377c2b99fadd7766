"""Teaching: the design picture drawn from the params, each page's "how to check by hand" commands in the
params' own names, and the hands-on labs on the sandbox."""
