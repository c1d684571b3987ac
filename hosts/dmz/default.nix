# The seed's VPS: peers with DN42 and reflects routes to the home router over
# the wg-ibgp tunnel. Everything comes from ../plan.toml.
{
  imports = [ (import ../common.nix "dmz") ];
}
