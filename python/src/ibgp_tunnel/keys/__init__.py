"""Key storage: WireGuard keys and PSKs for a plan, kept in sops files.

`generate` is what `ibgp-tunnel keys` runs; beside it the parts it is built
from: sops and its YAML (sops, sopsyaml, ciphertext), the writing of a run's
files all or none (transaction, journal, atomic, lock, checkpoint), the plan's
public_key lines (plantext) and `age-recipient` (age_recipient).
"""

# The names the CLI, the lab and the tests use; `generate` has the rest.
from ibgp_tunnel.keys.generate import (
    DEFAULT_LOCK_TIMEOUT as DEFAULT_LOCK_TIMEOUT,
)
from ibgp_tunnel.keys.generate import (
    Dn42Notice as Dn42Notice,
)
from ibgp_tunnel.keys.generate import (
    KeyPlan as KeyPlan,
)
from ibgp_tunnel.keys.generate import (
    KeysError as KeysError,
)
from ibgp_tunnel.keys.generate import (
    KeysReport as KeysReport,
)
from ibgp_tunnel.keys.generate import (
    Rotation as Rotation,
)
from ibgp_tunnel.keys.generate import (
    SecretNames as SecretNames,
)
from ibgp_tunnel.keys.generate import (
    decode_key as decode_key,
)
from ibgp_tunnel.keys.generate import (
    default_secret_names as default_secret_names,
)
from ibgp_tunnel.keys.generate import (
    dn42_secret_names as dn42_secret_names,
)
from ibgp_tunnel.keys.generate import (
    generate_keys as generate_keys,
)
from ibgp_tunnel.keys.generate import (
    generate_private_key as generate_private_key,
)
from ibgp_tunnel.keys.generate import (
    generate_psk as generate_psk,
)
from ibgp_tunnel.keys.generate import (
    get_secret as get_secret,
)
from ibgp_tunnel.keys.generate import (
    key_plan_from_doc as key_plan_from_doc,
)
from ibgp_tunnel.keys.generate import (
    plan_secrets as plan_secrets,
)
from ibgp_tunnel.keys.generate import (
    project_layout as project_layout,
)
from ibgp_tunnel.keys.generate import (
    public_key_of as public_key_of,
)
from ibgp_tunnel.keys.generate import (
    resolve_rotation as resolve_rotation,
)
