"""`ibgp-tunnel graph`: a picture of the plan (graphviz), optionally coloured by
doctor's results. model.py holds the data, source.py asks the core for it,
state.py turns doctor's checks into colours, dot.py writes DOT text, svg.py
runs `dot`, cli.py is the command."""
