"""The namespace lab: a whole plan on one Linux box, with real BIRD and WireGuard.

Every plan host becomes a network namespace running the artifacts the Nix
core renders (the same ones the NixOS module deploys); the lab adds what the
seed's picture has around them: an "internet", a DN42 peer, a host inside a
"route via VPS" prefix and a LAN client behind each client router.
"""
