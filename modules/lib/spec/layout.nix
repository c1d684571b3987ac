# services.ibgpTunnel.bird: standalone (the whole bird.conf) or merged into
# the host's own config, where every name we define carries a prefix the
# user's text cannot collide with and the global parts (router id, device,
# kernel protocols) are the user's unless asked for. Shared by bird.conf and
# the ROA unit (which names the ROA tables).
rec {
  layout = spec: {
    standalone = (spec.bird or { }).standalone or true;
    kernelProtocols = (spec.bird or { }).kernelProtocols or true;
  };
  merged = spec: !(layout spec).standalone;
  prefixOf = spec: if merged spec then "ibgpt_" else "";
}
