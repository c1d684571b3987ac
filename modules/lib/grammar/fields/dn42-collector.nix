# The DN42 route collector field of the table (../fields.nix): one host
# record, [hosts.<h>.dn42_collector] / services.ibgpTunnel.dn42Collector.
#
# The defaults are what DN42's wiki fixes for its Global Route Collector
# (https://wiki.dn42.dev/services/Route-Collector): AS4242422602, reached at
# fd42:4242:2601:ac12::1 (or 172.20.129.4), collector.dn42; a multihop,
# multiprotocol session; it imports everything and exports nothing; it asks
# for the ADD-PATH extension so that every path is sent. The source address
# is ours to choose, so it has no default.
{
  key = "dn42_collector";
  option = "dn42Collector";
  specOptional = true;
  type = "record";
  model = "Dn42Collector";
  modelDoc = "The export-only multihop session to DN42's Global Route Collector (wiki.dn42.dev/services/Route-Collector).";
  fields = [
    {
      key = "enable";
      option = "enable";
      type = "bool";
      default = false;
      description = "Send our routes and the DN42 routes we hold to DN42's Global Route Collector (export only: nothing is imported from it).";
    }
    {
      key = "neighbor";
      option = "neighbor";
      type = "str";
      token = "address";
      default = "fd42:4242:2601:ac12::1";
      example = "172.20.129.4";
      description = "The collector's address (DN42 wiki, services/Route-Collector: fd42:4242:2601:ac12::1, or 172.20.129.4), reached over DN42 (multihop).";
    }
    {
      key = "asn";
      option = "asn";
      type = "int";
      token = "asn";
      default = 4242422602;
      description = "The collector's AS number (DN42 wiki, services/Route-Collector: AS4242422602).";
    }
    {
      key = "source_address";
      option = "sourceAddress";
      type = "str";
      token = "address";
      nullable = true;
      example = "fd42:4242:1234::1";
      description = "Our address the session is opened from, of the neighbor's family; one DN42 routes back to us (an address of our own DN42 prefix). Unset: the kernel's choice for the route towards the collector.";
    }
  ];
  default = { };
  roles = [ "reflector" ];
  example = { enable = true; source_address = "fd42:4242:1234::1"; };
  description = "Reflector with DN42 peers: an export-only multihop eBGP session to DN42's Global Route Collector (wiki.dn42.dev/services/Route-Collector), so that our routes and the DN42 routes we hold appear on DN42's public views. Sent: our own announcements in the DN42 peers' export sets, and the DN42 routes we learned (every path, ADD-PATH tx, communities kept). Imported: nothing.";
}
