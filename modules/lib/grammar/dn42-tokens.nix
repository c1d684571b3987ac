# The DN42 token kinds, built with tokens.nix's own kind constructors so they
# read and fail the same way.
{
  kind,
  intKind,
  show,
  ipv6Re,
}:
let
  inherit (builtins) match;
in
rec {
  # fe80::/10 only: a link-local address is what DN42 peers put on a tunnel.
  linkLocal = kind {
    regex = "[fF][eE][89aAbB][0-9A-Fa-f]:[0-9A-Fa-f:]*";
    expect = "an IPv6 link-local address such as fe80::1080 (fe80::/10, no zone id '%...')";
    extra = value: if match ipv6Re value == null then "${show value} is not a valid IPv6 address" else null;
  };

  # Our end of the tunnel: a link-local address with its /64.
  linkLocalCidr = kind {
    regex = "[fF][eE][89aAbB][0-9A-Fa-f]:[0-9A-Fa-f:]*/64";
    expect = "a link-local address with /64 such as fe80::38/64";
    extra = value: linkLocal.problem (builtins.head (match "([^/]*)/64" value));
  };

  # IPv6's minimum MTU up to jumbo frames.
  mtu = intKind {
    low = 1280;
    high = 9000;
    expect = "a tunnel MTU";
  };

  latency = intKind {
    low = 1;
    high = 9;
    expect = "the DN42 latency community (64511, x) of a link (1: under 2.7 ms, x: under e^x ms)";
  };
  bandwidth = intKind {
    low = 21;
    high = 29;
    expect = "the DN42 bandwidth community (64511, x) of a link (21: 0.1 Mbit/s, 24: 100 Mbit/s, 25: 1 Gbit/s)";
  };
  crypto = intKind {
    low = 31;
    high = 34;
    expect = "the DN42 crypto community (64511, x) of a link (31 none, 32 unsafe, 33 safe without PFS, 34 safe with PFS such as WireGuard)";
  };

  # A URL curl fetches in the ROA unit's script: https, http or file, and only
  # characters that need no quoting in a shell or a systemd ExecStart.
  url = kind {
    regex = "(https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?|file://)(/[A-Za-z0-9._~+=,@:-]*)+";
    expect = "an https://, http:// or file:// URL without spaces, quotes, '%', '$', '?', '#' or shell characters, such as https://dn42.burble.com/roa/dn42_roa_bird2_4.conf";
  };

  # The DN42 registry's git repository (autopeer): fetched by git as root's
  # helper, so https:// or a local file:// only (no ssh://, no plain http://),
  # and only characters that need no quoting.
  gitUrl = kind {
    regex = "(https://[A-Za-z0-9.-]+(:[0-9]{1,5})?|file://)(/[A-Za-z0-9._~+=,@:-]*)+";
    expect = "an https:// or file:// git URL without spaces, quotes, '%', '$', '?', '#' or shell characters, such as https://git.dn42.dev/dn42/registry.git";
    extra = value: if builtins.match "(.*/)?[.][.]?(/.*)?" value != null then "${show value} has a '.' or '..' path component: write the URL plainly" else null;
  };

  # An RTR cache's TCP port (RFC 8210's is 323; stayrtr's default 8282).
  rtrPort = intKind {
    low = 1;
    high = 65535;
    expect = "the TCP port of an RTR cache (stayrtr listens on 8282)";
  };

  # The local stayrtr's port: unprivileged, as the cache runs without capabilities.
  rtrListenPort = intKind {
    low = 1024;
    high = 65535;
    expect = "the TCP port the local stayrtr listens on (1024-65535: it runs without privileges)";
  };

  # systemd time span for the refresh timer: 15min, 1h, 30s, 2h 30min is not allowed (one unit).
  interval = kind {
    regex = "[1-9][0-9]{0,5}(s|min|h|d)";
    expect = "a systemd time span with one unit such as 15min, 1h or 900s";
  };
}
