"""Bundle the Nix core into wheels so `ibgp-tunnel render` works outside a checkout.

A plain `force-include` would fail when the core is absent (a flake build whose
source is only `python/`), so the copy is conditional: the installed package then
finds the core through IBGP_TUNNEL_NIX_LIB instead (see ibgp_tunnel/paths.py).
"""

from pathlib import Path

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class CustomBuildHook(BuildHookInterface):
    def initialize(self, version: str, build_data: dict) -> None:
        core = Path(self.root).parent / "modules" / "lib"
        # Editable installs resolve the checkout's core by walking up from the source.
        if self.target_name == "wheel" and version != "editable" and core.is_dir():
            build_data["force_include"][str(core)] = "ibgp_tunnel/nix_lib"
        template = Path(self.root).parent / "templates" / "default"
        if self.target_name == "wheel" and version != "editable" and template.is_dir():
            build_data["force_include"][str(template)] = "ibgp_tunnel/template"
