# nixosConfigurations -> one Prometheus rules file (as data: builtins.toJSON
# it, JSON being YAML) holding the rule group of every host that has
# services.ibgpTunnel.monitoring on.
nixosConfigurations:
let
  monitored = builtins.filter (
    host:
    let
      cfg = host.config.services.ibgpTunnel;
    in
    cfg.enable && cfg.monitoring.enable
  ) (builtins.attrValues nixosConfigurations);
in
{
  groups = map (host: host.config.services.ibgpTunnel.monitoring.alertRules) monitored;
}
