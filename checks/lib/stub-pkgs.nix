# `pkgs` for module evaluation without nixpkgs (./eval-module.nix). Packages
# are named stand-in derivations: their store paths can be interpolated into
# unit files and compared, never built. The trivial builders keep their text
# so tests can read what a real build would write (sops-nix's manifest, the
# BIRD stop script). callPackage calls a function for real when every
# argument it needs is here (sops-nix's manifest-for.nix) and otherwise gives a
# stand-in named after the file (sops-install-secrets).
#
# Not mirrored: build-time checks (writeTextFile's checkPhase: `bird -p`,
# `sops-install-secrets -check-mode=sopsfile`); tests cover those separately.
lib:
let
  storePath = name: "${builtins.storeDir}/${builtins.substring 0 32 (builtins.hashString "sha256" name)}-${name}";

  stand-in = name: {
    type = "derivation";
    inherit name;
    outPath = storePath name;
    drvPath = storePath "${name}.drv";
    outputs = [ "out" ];
    meta = { };
    # mkPackageOption's defaultText and lib.getExe read these.
    pname = name;
  };

  written =
    {
      name,
      text,
      executable ? false,
      checkPhase ? "",
      ...
    }:
    stand-in name
    // {
      inherit text executable checkPhase;
    };

  pkgs = {
    inherit lib pkgs;

    callPackage =
      fn: args:
      let
        f = if builtins.isFunction fn then fn else import fn;
        formals = builtins.functionArgs f;
        available = pkgs // args;
        callable = lib.all (name: formals.${name} || available ? ${name}) (builtins.attrNames formals);
      in
      if callable then
        f (builtins.intersectAttrs formals available)
      else
        stand-in (baseNameOf (toString fn));

    # The VM test's fixture registry (a git repository built at build time).
    runCommand = name: _env: _script: stand-in name;
    writeTextFile = written;
    writeText = name: text: written { inherit name text; };
    writeShellScript =
      name: text:
      written {
        inherit name;
        executable = true;
        text = "#!${pkgs.runtimeShell}\n${text}";
      };
    runtimeShell = "${stand-in "bash-5.3"}/bin/bash";

    stdenv = rec {
      hostPlatform = {
        system = "x86_64-linux";
      };
      buildPlatform = hostPlatform;
      isLinux = true;
    };

    bird2 = stand-in "bird-2.17.1";
    bird3 = stand-in "bird-3.1.4";
    systemd = stand-in "systemd-258";
    gnupg = stand-in "gnupg-2.4.8";
    openssh = stand-in "openssh-10.2p1";
    git = stand-in "git-2.51.0";
    wireguard-tools = stand-in "wireguard-tools-1.0.20250521";
    nftables = stand-in "nftables-1.1.5";
    age = stand-in "age-1.2.1";
    curl = stand-in "curl-8.16.0";
    jq = stand-in "jq-1.8.1";
    iproute2 = stand-in "iproute2-6.16.0";
    stayrtr = stand-in "stayrtr-0.6.2";
    prometheus-bird-exporter = stand-in "bird-exporter-1.4.5";
    prometheus-wireguard-exporter = stand-in "prometheus-wireguard-exporter-3.6.6";
    prometheus-node-exporter = stand-in "node_exporter-1.9.1";
  };
in
pkgs
