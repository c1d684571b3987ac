# The sops-nix options the ibgp-tunnel module sets, at the types
# Mic92/sops-nix modules/sops/default.nix gives them (commit in
# docs/nixos-options.md). Imported by ./nixos-option-decls.nix; leave it out
# with `disabledModules = [ ./sops-option-decls.nix ]` to test a host that
# does not import sops-nix (the module then sees `options ? sops` false).
#
# Differences from sops-nix, all for running without pkgs/users/openssh:
# - secrets.<name>.group defaults to null (sops-nix: the owner's primary group
#   from users.users.<owner>.group when owner is set);
# - age.sshKeyPaths defaults to [ ] (sops-nix: the ed25519 host keys of
#   services.openssh when enabled);
# - sopsFileHash (readOnly, builtins.hashFile of the sops file) is omitted,
#   so tests need no real sops file; the build-time validation
#   (sops-install-secrets -check-mode=sopsfile) and sops-nix's own
#   assertions are not mirrored.
{ lib, config, ... }:
let
  inherit (lib) mkOption types;
  cfg = config.sops;

  pathNotInStore = lib.mkOptionType {
    name = "pathNotInStore";
    description = "path not in the Nix store";
    descriptionClass = "noun";
    check = x: !lib.path.hasStorePathPrefix (/. + x);
    merge = lib.mergeEqualOption;
  };

  secretType = types.submodule (
    { config, ... }:
    {
      config.sopsFile = lib.mkOptionDefault cfg.defaultSopsFile;
      options = {
        name = mkOption {
          type = types.str;
          default = config._module.args.name;
          description = "Name of the file used in /run/secrets.";
        };
        key = mkOption {
          type = types.str;
          default = if cfg.defaultSopsKey != null then cfg.defaultSopsKey else config._module.args.name;
          description = "Key looked up in the sops file; `a/b` walks nested keys.";
        };
        path = mkOption {
          type = types.str;
          default =
            if config.neededForUsers then
              "/run/secrets-for-users/${config.name}"
            else
              "/run/secrets/${config.name}";
        };
        format = mkOption {
          type = types.enum [
            "yaml"
            "json"
            "binary"
            "dotenv"
            "ini"
          ];
          default = cfg.defaultSopsFormat;
        };
        mode = mkOption {
          type = types.str;
          default = "0400";
        };
        owner = mkOption {
          type = types.nullOr types.str;
          default = null;
        };
        uid = mkOption {
          type = types.nullOr types.int;
          default = 0;
        };
        group = mkOption {
          # STAND-IN default, see the header.
          type = types.nullOr types.str;
          default = null;
        };
        gid = mkOption {
          type = types.nullOr types.int;
          default = 0;
        };
        sopsFile = mkOption {
          # Defaults (mkOptionDefault) to sops.defaultSopsFile, which has no
          # default: reading this with neither set is an evaluation error.
          type = types.path;
        };
        restartUnits = mkOption {
          type = types.listOf types.str;
          default = [ ];
        };
        reloadUnits = mkOption {
          type = types.listOf types.str;
          default = [ ];
        };
        neededForUsers = mkOption {
          type = types.bool;
          default = false;
        };
      };
    }
  );
in
{
  options.sops = {
    secrets = mkOption {
      type = types.attrsOf secretType;
      default = { };
    };
    defaultSopsFile = mkOption {
      # No default in sops-nix.
      type = types.path;
    };
    defaultSopsFormat = mkOption {
      type = types.str;
      default = "yaml";
    };
    defaultSopsKey = mkOption {
      type = types.nullOr types.str;
      default = null;
    };
    validateSopsFiles = mkOption {
      type = types.bool;
      default = true;
    };
    age = {
      keyFile = mkOption {
        type = types.nullOr pathNotInStore;
        default = null;
      };
      sshKeyPaths = mkOption {
        # STAND-IN default, see the header.
        type = types.listOf types.path;
        default = [ ];
      };
      generateKey = mkOption {
        type = types.bool;
        default = false;
      };
      plugins = mkOption {
        type = types.listOf types.package;
        default = [ ];
      };
    };
  };
}
