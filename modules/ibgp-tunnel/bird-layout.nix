# services.ibgpTunnel.bird: our bird.conf alone, or our part of the host's own.
{ config, lib, ... }:
let
  inherit (lib) mkOption types literalExpression;
  cfg = config.services.ibgpTunnel.bird;
in
{
  options.services.ibgpTunnel.bird = {
    standalone = mkOption {
      type = types.bool;
      default = true;
      description = ''
        true: the module writes the whole of services.bird.config (router id,
        protocol device, kernel protocols and ours). false, for a host that
        already runs BIRD (another DN42 module, OSPF at home): only our
        protocols, sets and functions go into services.bird.config, merged
        before the host's own text, every name prefixed `ibgpt_` (constants
        `IBGPT_`), with no router id (our sessions carry the plan's as a
        protocol option), no protocol device and no kernel protocols unless
        kernelProtocols is set. The host's kernel protocols then export our
        routes with `export where ibgpt_kernel_export_v4() || ...;` (and `_v6`).
      '';
    };
    kernelProtocols = mkOption {
      type = types.bool;
      default = cfg.standalone;
      defaultText = literalExpression "config.services.ibgpTunnel.bird.standalone";
      description = ''
        Add our own kernel protocols (`ibgpt_kernel4`/`ibgpt_kernel6` when not
        standalone). BIRD allows one kernel protocol per kernel table, so
        leave this off when the host's config has its own.
      '';
    };
  };
}
