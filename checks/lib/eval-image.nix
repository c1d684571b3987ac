# A host of ../../hosts extended with an image variant as images.nix does it
# (extendModules with the variant's module and the host's own
# image.modules.<variant>), summarised like ./eval-module.nix. The variant
# modules are mirrors (./image-variants.nix).
{
  lib,
  sops,
  host,
  variant,
}:
let
  base = import ./evaluate.nix {
    inherit lib;
    modules = [
      sops
      ../../modules/ibgp-tunnel
      host
    ];
  };
  extended = base.extendModules {
    modules = [
      (import ./image-variants.nix { inherit lib; }).${variant}
      (base.config.image.modules.${variant} or { })
    ];
  };
in
import ./summary.nix lib extended
// {
  inherit (extended.config.networking) hostName useDHCP;
  fileSystems = lib.mapAttrs (_: fs: { inherit (fs) device fsType autoResize; }) extended.config.fileSystems;
}
