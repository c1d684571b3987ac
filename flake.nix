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
      # The pure core (`lib.hostFromPlan plan name`, `lib.render spec`), and
      # for a host flake: `lib.deployNodes` (deploy-rs nodes for every host of
      # a plan) and `lib.alertRules` (the Prometheus rules of all hosts).
      lib = import ./modules/lib // {
        deployNodes = import ./modules/fleet/deploy-rs.nix;
        alertRules = import ./modules/fleet/alert-rules.nix;
      };

      # `nix flake init -t <this flake>`: a host flake (what `ibgp-tunnel init` writes).
      templates.default = {
        path = ./templates/default;
        description = "Hosts joined by ibgp-tunnel: one NixOS configuration and one deploy-rs node per host of the plan";
        welcomeText = ''
          Next: edit hosts/plan.toml (and hosts/<name>/ for each host), put your
          and your hosts' age recipients in .sops.yaml, run `ibgp-tunnel keys`,
          set the ibgp-tunnel input's url in flake.nix, then `nix flake check`
          and `nix run github:serokell/deploy-rs -- .`
        '';
      };

      nixosModules = {
        ibgp-tunnel = import ./modules/ibgp-tunnel;
        default = self.nixosModules.ibgp-tunnel;
      };

      nixosConfigurations = {
        dmz = exampleHost "dmz";
        pve = exampleHost "pve";
      };

      packages = nixpkgs.lib.recursiveUpdate (eachSystem (pkgs: {
        ibgp-tunnel = pkgs.callPackage ./python/package.nix { };
        default = self.packages.${pkgs.stdenv.hostPlatform.system}.ibgp-tunnel;
      })) {
        # Disk images of the example hosts through NixOS's own image builder
        # (system.build.images, formerly nixos-generators): the same as
        # `nixos-rebuild build-image --flake .#dmz --image-variant qemu-efi`.
        x86_64-linux = {
          # A VPS: qcow2, EFI, root labelled nixos (hosts/dmz's layout).
          dmz-image = self.nixosConfigurations.dmz.config.system.build.images.qemu-efi;
          # The same disk as raw, for providers that take a raw image.
          dmz-image-raw = self.nixosConfigurations.dmz.config.system.build.images.raw-efi;
          # A Proxmox VE backup (vzdump .vma.zst) to restore as a VM.
          pve-image = self.nixosConfigurations.pve.config.system.build.images.proxmox;
        };
      };

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
