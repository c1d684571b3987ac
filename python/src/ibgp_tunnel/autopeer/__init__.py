"""Self-service DN42 peering: a DN42 operator proves with a signature that they
maintain an ASN (the registry's `mnt-by` and that maintainer's `auth:` lines) and
gets a tunnel and a session on a reflector, at runtime, rendered and checked by
the same core as the plan's static peers (docs/autopeer.md)."""
