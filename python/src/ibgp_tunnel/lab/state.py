"""The lab's state file: everything `up` created, so `down` removes exactly that.

It is rewritten after every step of `up`, so an interrupted `up` still
leaves a complete list behind. It is read only from a directory carrying the
marker `up` wrote (labdir.py), and only when it names that directory and that
marker: a state file planted elsewhere never tells root what to kill or delete.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ibgp_tunnel.lab import labdir, location
from ibgp_tunnel.lab.daemons import Daemon
from ibgp_tunnel.lab.errors import ForeignDirError, LabError


@dataclass
class LabState:
    plan: str
    lab_dir: str
    # "plan": the plan's own [tuning]; "plain": the seed's plain sessions (bench/).
    tuning: str = "plan"
    # What namespace names start with, and where bird/birdc came from (None: PATH).
    netns_prefix: str = location.DEFAULT_PREFIX
    bird_dir: str | None = None
    netns: list[str] = field(default_factory=list)
    daemons: list[Daemon] = field(default_factory=list)
    # Paths the lab made outside lab_dir (e.g. /run/netns), removed by down if empty.
    created_paths: list[str] = field(default_factory=list)
    # host -> lab name -> data needed by status/exec (netns, run dir, bird socket).
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Deviations from the rendered artifacts the lab had to make, for people to read.
    warnings: list[str] = field(default_factory=list)
    complete: bool = False
    # The random id of the directory's marker (labdir.py): `down` checks both agree.
    lab_id: str = ""

    @property
    def state_file(self) -> Path:
        return Path(self.lab_dir) / "state.json"

    def to_json(self) -> dict[str, Any]:
        return {
            "plan": self.plan,
            "lab_dir": self.lab_dir,
            "tuning": self.tuning,
            "netns_prefix": self.netns_prefix,
            "bird_dir": self.bird_dir,
            "netns": self.netns,
            "daemons": [d.to_json() for d in self.daemons],
            "created_paths": self.created_paths,
            "nodes": self.nodes,
            "warnings": self.warnings,
            "complete": self.complete,
            "lab_id": self.lab_id,
        }

    @property
    def marker(self) -> labdir.Marker:
        return labdir.Marker(self.lab_id, self.netns_prefix)

    def save(self) -> None:
        # The directory exists: labdir.create made it, with its marker.
        path = self.state_file
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        os.replace(tmp, path)


def state_path(lab_dir: Path | None = None) -> Path:
    return (lab_dir or location.lab_dir()) / "state.json"


def load(lab_dir: Path | None = None) -> LabState | None:
    """The recorded lab, or None when no lab is up. Refuses (ForeignDirError) a
    directory `up` did not make, and a state file that does not match its marker."""
    lab_dir = lab_dir or location.lab_dir()
    marker = labdir.marker_of(lab_dir)
    if marker is None:
        return None
    path = state_path(lab_dir)
    try:
        data = json.loads(path.read_text())
        st = _from_json(data)
    except FileNotFoundError:
        return None  # the marker only: `up` stopped before its first step
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise LabError(
            f"cannot read the lab state {path}: {exc}; remove it by hand "
            f"after checking `ip netns list` for {marker.prefix}* namespaces"
        ) from exc
    if st.marker != marker or Path(st.lab_dir) != lab_dir:
        raise ForeignDirError(
            f"{path} does not match the marker {lab_dir / labdir.MARKER} (another "
            "directory's state, or a lab from an older ibgp-tunnel): the lab leaves it "
            "alone; remove it by hand after checking `ip netns list`"
        )
    return st


def _from_json(data: dict[str, Any]) -> LabState:
    return LabState(
        plan=str(data["plan"]),
        lab_dir=str(data["lab_dir"]),
        tuning=str(data.get("tuning", "plan")),
        netns_prefix=str(data.get("netns_prefix", location.DEFAULT_PREFIX)),
        bird_dir=data.get("bird_dir"),
        netns=list(data.get("netns", [])),
        daemons=[Daemon.from_json(d) for d in data.get("daemons", [])],
        created_paths=list(data.get("created_paths", [])),
        nodes=dict(data.get("nodes", {})),
        warnings=list(data.get("warnings", [])),
        complete=bool(data.get("complete", False)),
        lab_id=str(data.get("lab_id", "")),
    )
