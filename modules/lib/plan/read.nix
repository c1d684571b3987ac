# A plan file -> the plan as an attrset (TOML, read by the evaluator).
file: builtins.fromTOML (builtins.readFile file)
