{
  description = "iBGP over a dedicated WireGuard tunnel (DN42 and custom routes from a VPS to a home router): a NixOS module on a pure-Nix core, and a Python helper";

  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";
    sops-nix = {
      url = "github:Mic92/sops-nix";
      inputs.nixpkgs.follows = "nixpkgs";
    };
  };

  outputs =
    {
      self,
      nixpkgs,
      sops-nix,
    }:
    let
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      eachSystem = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});

      exampleHost =
        name:
        nixpkgs.lib.nixosSystem {
          modules = [
            sops-nix.nixosModules.sops
            self.nixosModules.default
            ./hosts/${name}
            { nixpkgs.hostPlatform = "x86_64-linux"; }
          ];
        };
    in
    {
      # The pure core: `lib.hostFromPlan plan name`, `lib.render spec`.
      lib = import ./modules/lib;

      nixosModules = {
        ibgp-tunnel = import ./modules/ibgp-tunnel;
        default = self.nixosModules.ibgp-tunnel;
      };

      nixosConfigurations = {
        dmz = exampleHost "dmz";
        pve = exampleHost "pve";
      };

      packages = eachSystem (pkgs: {
        ibgp-tunnel = pkgs.callPackage ./python/package.nix { };
        default = self.packages.${pkgs.stdenv.hostPlatform.system}.ibgp-tunnel;
      });

      apps = eachSystem (
        pkgs:
        let
          cli = "${self.packages.${pkgs.stdenv.hostPlatform.system}.ibgp-tunnel}/bin/ibgp-tunnel";
        in
        {
          # `nix run` (as root): the namespace lab on the example plan.
          default = {
            type = "app";
            program = toString (
              pkgs.writeShellScript "ibgp-tunnel-lab" ''exec ${cli} lab up ${./hosts/plan.toml} "$@"''
            );
          };
          ibgp-tunnel = {
            type = "app";
            program = cli;
          };
        }
      );

      checks.x86_64-linux =
        let
          pkgs = nixpkgs.legacyPackages.x86_64-linux;
        in
        {
          vm = pkgs.testers.runNixOSTest (
            import ./checks/vm-test.nix {
              inherit sops-nix;
              ibgpTunnel = self.nixosModules.default;
            }
          );
          render = pkgs.callPackage ./checks/render.nix { core = self.lib; };
          dmz = self.nixosConfigurations.dmz.config.system.build.toplevel;
          pve = self.nixosConfigurations.pve.config.system.build.toplevel;
          python = self.packages.x86_64-linux.ibgp-tunnel;
        };

      formatter = eachSystem (pkgs: pkgs.nixfmt);

      devShells = eachSystem (
        pkgs:
        let
          helper = self.packages.${pkgs.stdenv.hostPlatform.system}.ibgp-tunnel;
        in
        {
          default = pkgs.mkShell {
            inputsFrom = [ helper ];
            packages = helper.runtimeTools ++ [
              pkgs.ruff
              pkgs.nixfmt
            ];
          };
        }
      );
    };
}
