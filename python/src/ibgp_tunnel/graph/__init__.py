"""`ibgp-tunnel graph`: a picture of the plan (graphviz), optionally coloured by
doctor's results. model.py holds the data, source.py asks the core for it,
results.py reads doctor's JSON and lab.py runs doctor on the lab's hosts,
state.py turns their checks into colours, dot.py writes DOT text, svg.py runs
`dot`, output.py writes the file, cli.py is the command."""
