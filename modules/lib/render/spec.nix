# The one door into the renderers. `tokens spec` lists every value of a host
# spec that reaches bird.conf, the nft rules, the WireGuard settings or a
# sops secret name, with its kind and option path; `checked spec` emits each
# through its kind's emitter (a throw naming the option and the fix) and
# hands the renderers a copy holding only those fields. So a spec that
# skipped every check (a hand-made one, or a plan nobody ran `check` on)
# cannot change the structure of what is rendered.
let
  inherit (builtins)
    attrNames
    concatLists
    concatMap
    genList
    isAttrs
    isBool
    isList
    length
    elemAt
    mapAttrs
    ;
  t = import ../tokens.nix;

  root = "services.ibgpTunnel";

  token = kind: path: value: [ { inherit kind path value; } ];

  # A list option: each entry with its index, or one problem for a non-list.
  each =
    kind: path: value:
    if isList value then
      concatLists (genList (i: token kind "${path}[${toString i}]" (elemAt value i)) (length value))
    else
      token notList path value;

  attrsOf =
    path: value: f:
    if isAttrs value then
      concatMap (name: token t.name "${path}.${key name}" name ++ f "${path}.${key name}" value.${name}) (attrNames value)
    else
      token notAttrs path value;

  # Option paths must stay on one line even for a name that is the attack.
  key = name: if t.name.problem name == null then name else t.show name;

  notList = {
    problem = value: "${t.show value} is not a list";
    emit = field: value: throw "ibgp-tunnel: ${field}: ${t.show value} is not a list";
  };
  notAttrs = {
    problem = value: "${t.show value} is not an attribute set";
    emit = field: value: throw "ibgp-tunnel: ${field}: ${t.show value} is not an attribute set";
  };
  bool = {
    problem = value: if isBool value then null else "${t.show value} is not true or false";
    emit = field: value: if isBool value then value else throw "ibgp-tunnel: ${field}: ${t.show value} is not true or false";
  };
  nullOr = kind: {
    problem = value: if value == null then null else kind.problem value;
    emit = field: value: if value == null then null else kind.emit field value;
  };

  families =
    kind: path: value:
    if isAttrs value then each (kind "ipv4") "${path}.ipv4" (value.ipv4 or [ ]) ++ each (kind "ipv6") "${path}.ipv6" (value.ipv6 or [ ]) else token notAttrs path value;

  tuningTokens =
    path: tuning:
    [
      { kind = bool; path = "${path}.bfd"; value = tuning.bfd; }
      { kind = bool; path = "${path}.gracefulRestart"; value = tuning.gracefulRestart; }
      { kind = nullOr t.importLimitAction; path = "${path}.importLimitAction"; value = tuning.importLimitAction; }
    ]
    ++ concatMap (name: token (nullOr t.tuning.${name}) "${path}.${name}" tuning.${name}) [
      "bfdIntervalMs"
      "bfdMultiplier"
      "gracefulRestartTime"
      "gracefulRestartWait"
      "longLivedStaleTime"
      "connectDelayTime"
      "connectRetryTime"
      "holdTime"
      "keepaliveTime"
      "importLimit"
    ]
    ++ (
      if tuning.errorWaitTime == null then
        [ ]
      else if isList tuning.errorWaitTime && length tuning.errorWaitTime == 2 then
        each t.tuning.errorWaitTime "${path}.errorWaitTime" tuning.errorWaitTime
      else
        token {
          problem = value: "${t.show value} is not a list of two numbers [ minimum maximum ]";
          emit = field: value: throw "ibgp-tunnel: ${field}: is not a list of two numbers [ minimum maximum ]";
        } "${path}.errorWaitTime" tuning.errorWaitTime
    );

  linkTokens =
    path: link:
    token t.interface "${path}.interface" link.interface
    ++ token t.port "${path}.listenPort" link.listenPort
    ++ each t.cidr "${path}.ips" link.ips
    ++ token t.ipv4 "${path}.neighborAddress" link.neighborAddress
    ++ families t.pattern "${path}.importPrefixes" link.importPrefixes
    ++ token t.name "${path}.peer.name" link.peer.name
    ++ token (nullOr t.publicKey) "${path}.peer.publicKey" link.peer.publicKey
    ++ token (nullOr t.runtimePath) "${path}.peer.presharedKeyFile" link.peer.presharedKeyFile
    ++ token (nullOr t.endpoint) "${path}.peer.endpoint" link.peer.endpoint
    ++ each t.cidr "${path}.peer.allowedIPs" link.peer.allowedIPs
    ++ token (nullOr t.keepalive) "${path}.peer.persistentKeepalive" link.peer.persistentKeepalive;

  peerTokens =
    path: peer:
    token t.asn "${path}.asn" peer.asn
    ++ token t.address "${path}.neighbor" peer.neighbor
    ++ token (nullOr t.interface) "${path}.interface" peer.interface
    ++ each t.name "${path}.exportSets" peer.exportSets;

  tokens =
    spec:
    token t.role "${root}.role" spec.role
    ++ token t.asn "${root}.asn" spec.asn
    ++ token t.routerId "${root}.routerId" spec.routerId
    ++ attrsOf "${root}.prefixSets" spec.prefixSets (path: set: families t.pattern path set)
    ++ each t.name "${root}.importSets" spec.importSets
    ++ each t.name "${root}.kernelExportSets" spec.kernelExportSets
    ++ families t.prefix "${root}.announce" spec.announce
    ++ each t.interface "${root}.lanInterfaces" spec.lanInterfaces
    ++ each t.interface "${root}.uplinkInterfaces" spec.uplinkInterfaces
    ++ token bool "${root}.openFirewall" spec.openFirewall
    ++ token (nullOr t.runtimePath) "${root}.privateKeyFile" spec.privateKeyFile
    ++ attrsOf "${root}.links" spec.links linkTokens
    ++ attrsOf "${root}.dn42Peers" spec.dn42Peers peerTokens
    ++ tuningTokens "${root}.tuning" spec.tuning;

  problems = spec: concatMap (tok: let p = tok.kind.problem tok.value; in if p == null then [ ] else [ { inherit (tok) path; message = p; } ]) (tokens spec);

  # The copy the renderers read: each leaf through its emitter, lazily, so
  # asking for the link names (sops secret names) does not force the key
  # paths (which sops-nix derives from those very secrets).
  emit = kind: path: value: kind.emit path value;
  emitEach =
    kind: path: value:
    if isList value then genList (i: kind.emit "${path}[${toString i}]" (elemAt value i)) (length value) else notList.emit path value;
  emitAttrs =
    path: value: f:
    if isAttrs value then
      builtins.listToAttrs (
        map (name: {
          name = t.name.emit "${path}.${key name}" name;
          value = f "${path}.${name}" value.${name};
        }) (attrNames value)
      )
    else
      notAttrs.emit path value;
  emitFamilies =
    kind: path: value:
    if isAttrs value then
      {
        ipv4 = emitEach (kind "ipv4") "${path}.ipv4" (value.ipv4 or [ ]);
        ipv6 = emitEach (kind "ipv6") "${path}.ipv6" (value.ipv6 or [ ]);
      }
    else
      notAttrs.emit path value;

  checked =
    spec:
    let
      tuning = spec.tuning;
      tp = "${root}.tuning";
      timer = name: emit (nullOr t.tuning.${name}) "${tp}.${name}" tuning.${name};
    in
    {
      role = emit t.role "${root}.role" spec.role;
      asn = emit t.asn "${root}.asn" spec.asn;
      routerId = emit t.routerId "${root}.routerId" spec.routerId;
      prefixSets = emitAttrs "${root}.prefixSets" spec.prefixSets (emitFamilies t.pattern);
      importSets = emitEach t.name "${root}.importSets" spec.importSets;
      kernelExportSets = emitEach t.name "${root}.kernelExportSets" spec.kernelExportSets;
      announce = emitFamilies t.prefix "${root}.announce" spec.announce;
      lanInterfaces = emitEach t.interface "${root}.lanInterfaces" spec.lanInterfaces;
      uplinkInterfaces = emitEach t.interface "${root}.uplinkInterfaces" spec.uplinkInterfaces;
      openFirewall = emit bool "${root}.openFirewall" spec.openFirewall;
      privateKeyFile = emit (nullOr t.runtimePath) "${root}.privateKeyFile" spec.privateKeyFile;
      links = emitAttrs "${root}.links" spec.links (
        path: link: {
          interface = emit t.interface "${path}.interface" link.interface;
          listenPort = emit t.port "${path}.listenPort" link.listenPort;
          ips = emitEach t.cidr "${path}.ips" link.ips;
          neighborAddress = emit t.ipv4 "${path}.neighborAddress" link.neighborAddress;
          importPrefixes = emitFamilies t.pattern "${path}.importPrefixes" link.importPrefixes;
          peer = {
            name = emit t.name "${path}.peer.name" link.peer.name;
            publicKey = emit (nullOr t.publicKey) "${path}.peer.publicKey" link.peer.publicKey;
            presharedKeyFile = emit (nullOr t.runtimePath) "${path}.peer.presharedKeyFile" link.peer.presharedKeyFile;
            endpoint = emit (nullOr t.endpoint) "${path}.peer.endpoint" link.peer.endpoint;
            allowedIPs = emitEach t.cidr "${path}.peer.allowedIPs" link.peer.allowedIPs;
            persistentKeepalive = emit (nullOr t.keepalive) "${path}.peer.persistentKeepalive" link.peer.persistentKeepalive;
          };
        }
      );
      dn42Peers = emitAttrs "${root}.dn42Peers" spec.dn42Peers (
        path: peer: {
          asn = emit t.asn "${path}.asn" peer.asn;
          neighbor = emit t.address "${path}.neighbor" peer.neighbor;
          interface = emit (nullOr t.interface) "${path}.interface" peer.interface;
          exportSets = emitEach t.name "${path}.exportSets" peer.exportSets;
        }
      );
      tuning = {
        bfd = emit bool "${tp}.bfd" tuning.bfd;
        gracefulRestart = emit bool "${tp}.gracefulRestart" tuning.gracefulRestart;
        importLimitAction = emit (nullOr t.importLimitAction) "${tp}.importLimitAction" tuning.importLimitAction;
        bfdIntervalMs = timer "bfdIntervalMs";
        bfdMultiplier = timer "bfdMultiplier";
        gracefulRestartTime = timer "gracefulRestartTime";
        gracefulRestartWait = timer "gracefulRestartWait";
        longLivedStaleTime = timer "longLivedStaleTime";
        connectDelayTime = timer "connectDelayTime";
        connectRetryTime = timer "connectRetryTime";
        holdTime = timer "holdTime";
        keepaliveTime = timer "keepaliveTime";
        importLimit = timer "importLimit";
        errorWaitTime =
          if tuning.errorWaitTime == null then
            null
          else if isList tuning.errorWaitTime && length tuning.errorWaitTime == 2 then
            emitEach t.tuning.errorWaitTime "${tp}.errorWaitTime" tuning.errorWaitTime
          else
            throw "ibgp-tunnel: ${tp}.errorWaitTime: is not a list of two numbers [ minimum maximum ]";
      };
    };
in
{
  inherit tokens problems checked;
}
